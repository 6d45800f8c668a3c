"""The Python API: stored runs as records and pandas DataFrames, and suites run from Python.

```python
import tunegate
s = tunegate.open("tunegate.duckdb")
s.runs(); s.summary(run); s.scores(run); s.examples(run); s.compare(a, b)
```

The `*_records` functions are what `tunegate runs|show|compare|gate --json` print, so a frame's
columns and values are exactly the CLI's JSON fields. Nothing here imports torch; `evaluate`
loads a model only when it is called.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError
from harness.measurement import comparability_record, mismatch_record
from harness.store import queries_api
from harness.store.db import RunRecord, Store

if TYPE_CHECKING:
    import pandas as pd

    from harness.gate.evaluate import GateResult
    from harness.results import MetricComparison, MetricSummary


def _num(x: Any) -> float | None:
    """A JSON-safe number: nan and infinities are null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _time(t: Any) -> str | None:
    return t.isoformat(sep=" ") if isinstance(t, datetime) else (None if t is None else str(t))


def run_record(run: RunRecord, done: int | None = None, errors: int | None = None) -> dict[str, Any]:
    """One run as the JSON of `show` and `compare` describe it."""
    from harness.models.spec import is_endpoint_spec

    out: dict[str, Any] = {
        "run_id": run.run_id,
        "status": run.shown_status,
        "model": run.model_spec,
        "model_id": run.model_id,
        "suite": run.suite_name,
        "suite_id": run.suite_id,
        "kind": run.suite_kind,
        "started_at": _time(run.started_at),
        "ended_at": _time(run.ended_at),
        "n_examples": run.n_examples,
        "endpoint": is_endpoint_spec(run.model_spec),
        "shards": len(run.config.get("shards", [])) or None,
    }
    if done is not None:
        out["done"], out["errors"] = done, errors
    return out


def runs_records(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Stored runs, newest first: the rows of `tunegate runs --json`."""
    from harness.models.spec import is_endpoint_spec

    rows = store.list_runs(limit)
    ids = [r["run_id"] for r in rows]
    # the model id is the short fingerprint: two runs of one spec (a re-scored file, a retrained
    # folder) differ here, and it is what gate/compare/report accept to pick one
    model_ids = queries_api.model_ids(store, ids)
    return [
        {
            "run_id": r["run_id"],
            "status": r["shown_status"],
            "model": r["model"],
            "model_id": model_ids.get(r["run_id"]),
            "suite": r["suite"],
            "started_at": _time(r["started_at"]),
            "n_examples": r["n_examples"],
            "done": r["done"],
            "errors": r["errors"],
            "endpoint": is_endpoint_spec(r["model"]),
        }
        for r in rows
    ]


def summary_records(metrics: Sequence[MetricSummary]) -> list[dict[str, Any]]:
    """Per metric of one run: the rows of `tunegate show --json` (under "metrics")."""
    return [
        {
            "metric": m.metric,
            "aggregation": m.aggregation,
            "higher_is_better": m.higher_is_better,
            "n": m.summary.n,
            "value": _num(m.summary.value),
            "ci_low": _num(m.summary.ci_low),
            "ci_high": _num(m.summary.ci_high),
            "stderr": _num(m.summary.stderr),
            "errors": m.n_errors,
            "signature": m.signature,
        }
        for m in metrics
    ]


def show_record(store: Store, run_ref: str) -> dict[str, Any]:
    """`tunegate show --json`: the run and its metrics."""
    from harness.results import summarize_run

    run, metrics = summarize_run(store, run_ref)
    done, errors = store.counts(run.run_id)
    return {
        "run": run_record(run, done, errors),
        "measurement": store.measurement(run.run_id),
        "metrics": summary_records(metrics),
    }


def verdict(improved: bool | None) -> str:
    """better | worse | no_change: the CI of the delta excludes 0 (or not)."""
    return "no_change" if improved is None else "better" if improved else "worse"


def comparison_records(comps: Sequence[MetricComparison]) -> list[dict[str, Any]]:
    """Per metric of a paired comparison: the rows of `tunegate compare --json` (under "metrics")."""
    out = []
    for c in comps:
        p = c.paired
        out.append(
            {
                "metric": c.metric,
                "aggregation": c.aggregation,
                "higher_is_better": p.higher_is_better,
                "n": p.n,
                "baseline": _num(p.baseline),
                "candidate": _num(p.candidate),
                "delta": _num(p.delta),
                "ci_low": _num(p.ci_low),
                "ci_high": _num(p.ci_high),
                "ci_method": p.ci_method,
                "test": p.test,
                "p_value": _num(p.p_value),
                "wins": p.wins,
                "losses": p.losses,
                "ties": p.ties,
                "verdict": verdict(p.improved),
                "errors_baseline": c.n_errors[0],
                "errors_candidate": c.n_errors[1],
                "only_in_baseline": c.only_in[0],
                "only_in_candidate": c.only_in[1],
                "signature": c.signature,
                "mismatches": [mismatch_record(m) for m in c.mismatches],
                "regressed": c.regressed,
            }
        )
    return out


def compare_record(
    store: Store,
    baseline: str,
    candidate: str,
    *,
    top: int = 5,
    test: str = "auto",
    ci: str = "auto",
    allow: set[str] | frozenset[str] = frozenset(),
    suite: str | None = None,
) -> dict[str, Any]:
    """`tunegate compare --json`: both runs and the paired comparison per metric. Each side is a
    run id or a model (id or spec, resolved as the gate resolves it; `suite` picks one of its runs)."""
    from harness.gate.degenerate import degenerate
    from harness.gate.sides import run_pair
    from harness.results import compare_runs

    baseline, candidate = run_pair(store, baseline, candidate, suite)
    ra, rb, comps = compare_runs(store, baseline, candidate, k=top, test=test, ci=ci, allow=allow)
    deg = degenerate(store, ra.run_id, rb.run_id)
    return {
        "suite": ra.suite_name,
        "baseline": run_record(ra),
        "candidate": run_record(rb),
        "degenerate": deg.record() if deg else None,
        "comparability": comparability_record(comps),
        "metrics": comparison_records(comps),
    }


def gate_record(result: GateResult) -> dict[str, Any]:
    """`tunegate gate --json`: the verdict, then one record per check (failures first)."""
    from harness.gate.evaluate import DELTA_CHECKS

    checks = []
    for c in sorted(result.checks, key=lambda c: c.passed):
        p = c.comparison.paired if c.comparison is not None else None
        about_delta = p is not None and c.check in DELTA_CHECKS  # min/max/error rows: no p to show
        checks.append(
            {
                "passed": c.passed,
                "suite": c.suite,
                "metric": c.metric,
                "check": c.check,
                "threshold": _num(c.threshold),
                "observed": _num(c.observed),
                "reason": c.reason,
                "n": p.n if p else None,
                "baseline": _num(p.baseline) if p else None,
                "candidate": _num(p.candidate) if p else None,
                "delta": _num(p.delta) if p else None,
                "ci_low": _num(p.ci_low) if p else None,
                "ci_high": _num(p.ci_high) if p else None,
                "test": p.test if p and about_delta else None,
                "p_value": _num(
                    c.p_value if c.p_value is not None else (p.p_value if p and about_delta else None)
                ),
                "p_adjusted": _num(c.p_adjusted),
                "mde": _num(c.mde),
                "n_needed": c.n_needed,
                "warning": c.warning,
                "subset": c.subset,
            }
        )
    return {
        "policy": result.policy,
        "passed": result.passed,
        "failed": sum(not c.passed for c in result.checks),
        "checks": checks,
        "correction": result.correction,
        "family": result.family,
        "warnings": list(result.warnings),
        "comparability": dict(result.comparability),
        "baseline": {s: r.run_id for s, r in result.baseline.items()},
        "candidate": {s: r.run_id for s, r in result.candidate.items()},
    }


def scores_records(store: Store, run_ref: str) -> list[dict[str, Any]]:
    """Every score row of a run, one per example × metric, in suite order."""
    run = store.get_run(run_ref)
    return [
        {"example_id": e, "metric": m, "value": v, "weight": w, "error": err, "detail": _loads(d)}
        for e, m, v, w, err, d in queries_api.score_rows(store, run.suite_id, run.run_id)
    ]


def examples_records(store: Store, run_ref: str) -> list[dict[str, Any]]:
    """One record per example of a run: prompt, reference, output, error, then every score."""
    run = store.get_run(run_ref)
    rows = queries_api.example_output_rows(store, run.suite_id, run.run_id)
    metrics = [m["metric"] for m in store.run_metrics(run.run_id)]
    by_example: dict[str, dict[str, Any]] = {}
    for r in scores_records(store, run.run_id):
        by_example.setdefault(r["example_id"], {})[r["metric"]] = r["value"]
    out = []
    for eid, pos, prompt, ref, output, err, cached in rows:
        rec = {
            "example_id": eid,
            "position": pos,
            "prompt": prompt,
            "reference": _loads(ref) or [],
            "output": output,
            "error": err,
            "cached": cached,
        }
        scores = by_example.get(eid, {})
        rec.update({m: scores.get(m) for m in metrics})
        out.append(rec)
    return out


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _frame(records: list[dict[str, Any]], columns: list[str] | None = None) -> pd.DataFrame:
    try:
        import pandas as pd
    except ImportError:
        raise UserError("the DataFrame API needs pandas: pip install pandas") from None
    return pd.DataFrame.from_records(records, columns=columns)


_RUN_COLUMNS = [
    "run_id",
    "status",
    "model",
    "model_id",
    "suite",
    "started_at",
    "n_examples",
    "done",
    "errors",
    "endpoint",
]


class Results:
    """A tunegate store, read as pandas DataFrames. Each call opens the file and closes it again,
    so a notebook never holds the store's single write lock between cells."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._store():  # fail now on a missing or damaged file, not at the first call
            pass

    def __repr__(self) -> str:
        return f"tunegate.open({str(self.path)!r})"

    @contextmanager
    def _store(self) -> Iterator[Store]:
        with Store(self.path, must_exist=True) as store:
            yield store

    def runs(self, limit: int = 1000) -> pd.DataFrame:
        """One row per run, newest first (the columns of `tunegate runs --json`)."""
        with self._store() as s:
            return _frame(runs_records(s, limit), _RUN_COLUMNS)

    def summary(self, run: str) -> pd.DataFrame:
        """One row per metric: n, value, 95% CI, stderr, errors (`tunegate show --json`)."""
        with self._store() as s:
            return _frame(show_record(s, run)["metrics"])

    def scores(self, run: str) -> pd.DataFrame:
        """One row per example × metric: value, weight, error, detail."""
        with self._store() as s:
            return _frame(
                scores_records(s, run), ["example_id", "metric", "value", "weight", "error", "detail"]
            )

    def examples(self, run: str) -> pd.DataFrame:
        """One row per example: prompt, reference, output, error, cached, then a column per metric."""
        with self._store() as s:
            return _frame(examples_records(s, run))

    def compare(
        self, baseline: str, candidate: str, *, test: str = "auto", ci: str = "auto", suite: str | None = None
    ) -> pd.DataFrame:
        """One row per metric: the paired comparison of `tunegate compare --json`. Each side is a run
        id or a model spec (as for the gate); `suite` picks the suite when the models share several."""
        with self._store() as s:
            rows = compare_record(s, baseline, candidate, top=0, test=test, ci=ci, suite=suite)["metrics"]
        return _frame([{k: v for k, v in r.items() if k != "regressed"} for r in rows])

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Any SQL over the store's tables (see the README's table list)."""
        with self._store() as s:
            return queries_api.user_query(s, query, params)


def open(
    path: str | Path = "tunegate.duckdb",
) -> Results:  # the name users expect (shadows the builtin here only)
    """Open a store for reading as DataFrames."""
    return Results(path)


def evaluate(
    model: str,
    suites: str | Sequence[str],
    db: str | Path = "tunegate.duckdb",
    *,
    limit: int | None = None,
    seed: int = 1234,
    batch_size: int | str = 8,
    shard: str | tuple[int, int] | None = None,
    progress: bool = False,
) -> list[str]:
    """Run `suites` (names or YAML paths) on `model` (a model spec), storing into `db`; the run ids.

    The same path as `tunegate run`: inputs are validated first, cached outputs are reused.
    """
    from harness.evaluate import evaluate_runs  # the path `tunegate run` takes
    from harness.models.batching import parse_batch_size
    from harness.runner import RunOptions
    from harness.runner.shard import parse_shard

    names = [suites] if isinstance(suites, str) else list(suites)
    kn = parse_shard(shard) if isinstance(shard, str) else shard
    options = RunOptions(limit=limit, seed=seed, batch_size=parse_batch_size(str(batch_size)), shard=kn)
    return [
        o.run_id for o in evaluate_runs(model, names, Path(db), options, progress=_bars if progress else None)
    ]


@contextmanager
def _bars() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Progress for `evaluate(progress=True)`: the CLI's bars (rich, on stderr)."""
    from tunegate.cli.common import progress_bars

    with progress_bars(True) as start:
        yield start
