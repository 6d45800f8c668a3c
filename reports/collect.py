"""Read everything a report shows from the store: runs, lineage, statistics, per-example rows.

Statistics come from `harness.results` and verdicts from `harness.gate`; nothing here calls a
model or recomputes a confidence interval.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import stats
from harness.errors import UserError
from harness.gate import CheckResult
from harness.results import MetricComparison, compare_runs, summarize_run
from harness.store import RunRecord, Store
from harness.store import queries_reports as q
from harness.store.contamination import contaminated
from harness.store.training import get_training_run, lineage, training_logs
from reports.leaderboard import badges as candidate_badges
from reports.sides import ReportRuns, Side

MAX_TEXT = 4000
"""Longest text kept per field of an example; longer ones are cut (and say so) to bound the file."""


@dataclass
class MetricRow:
    """One line of the scoreboard: a suite × metric, every side's value, each candidate's paired
    delta against the first side (the baseline), and the gate's checks."""

    suite: str
    metric: str
    aggregation: str
    higher_is_better: bool
    binary: bool
    values: list[stats.Summary | None] = field(default_factory=list)
    """Per side (the baseline first); None where the side has no run of this suite."""
    errors: list[int] = field(default_factory=list)
    comparisons: list[MetricComparison | None] = field(default_factory=list)
    """Per candidate (side k + 1 against the baseline)."""
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def base(self) -> stats.Summary | None:
        return self.values[0]

    @property
    def cand(self) -> stats.Summary | None:
        return self.values[1] if len(self.values) > 1 else None

    @property
    def base_errors(self) -> int:
        return self.errors[0]

    @property
    def cand_errors(self) -> int:
        return self.errors[1] if len(self.errors) > 1 else 0

    @property
    def comparison(self) -> MetricComparison | None:
        return self.comparisons[0] if self.comparisons else None

    def verdict_of(self, k: int) -> str | None:
        """better | worse | ns (CI covers 0) for candidate k, or None without a paired comparison."""
        c = self.comparisons[k] if k < len(self.comparisons) else None
        if c is None:
            return None
        improved = c.paired.improved
        return "ns" if improved is None else ("better" if improved else "worse")

    @property
    def verdict(self) -> str | None:
        """The first candidate's verdict (the only one in a base-vs-candidate report)."""
        return self.verdict_of(0)


def metric_rows(
    store: Store, runs: ReportRuns, notes: list[str], checks: dict[tuple[str, str], list[CheckResult]]
) -> list[MetricRow]:
    """The scoreboard of every suite, notes saying what could not be compared and why."""
    rows: list[MetricRow] = []
    for name in runs.suites:
        per_side = runs.runs_of(name)
        if runs.compared and any(r is None for r in per_side):
            if len(per_side) == 2:
                notes.append(
                    f"suite '{name}' was run only for the {'candidate' if per_side[0] is None else 'base'}"
                )
            else:
                missing = [runs.labels[k] for k, r in enumerate(per_side) if r is None]
                notes.append(f"suite '{name}' was not run for {', '.join(missing)}")
        suite_rows = _metric_rows(store, name, per_side, runs.labels, notes, runs.allow)
        for r in suite_rows:
            r.checks = checks.get((name, r.metric), [])
        rows += suite_rows
    return rows


def clean_boards(store: Store, runs: ReportRuns, examples: dict[str, Any]) -> list[dict[str, Any]]:
    """Per contaminated suite of a base-vs-candidate report: the scoreboard on clean examples."""
    out: list[dict[str, Any]] = []
    if len(runs.sides) != 2:
        return out
    for suite in examples["suites"]:
        ra, rb = runs.runs_of(suite["name"])
        if ra is not None and rb is not None and suite.get("contaminated"):
            out.append(_clean_board(store, suite["name"], ra, rb, set(suite["contaminated"]), runs.allow))
    return out


def _clean_board(
    store: Store, suite: str, ra: RunRecord, rb: RunRecord, bad: set[str], allow: frozenset[str] | set[str]
) -> dict[str, Any]:
    """The suite's paired comparison again, without the examples found in training data."""
    try:
        comps = compare_runs(store, ra.run_id, rb.run_id, k=0, exclude=bad, allow=allow)[2]
    except UserError:  # measured differently: the main board already says why
        comps = []
    n = max((c.paired.n for c in comps), default=0)
    return {"suite": suite, "n_clean": n, "n_contaminated": len(bad), "comparisons": comps}


def _metric_rows(
    store: Store,
    suite: str,
    runs: list[RunRecord | None],
    labels: list[str],
    notes: list[str],
    allow: frozenset[str] | set[str] = frozenset(),
) -> list[MetricRow]:
    by_metric: dict[str, MetricRow] = {}
    n = len(runs)
    for k, run in enumerate(runs):
        if run is None:
            continue
        for m in summarize_run(store, run.run_id)[1]:
            row = by_metric.get(m.metric)
            if row is None:
                row = by_metric[m.metric] = MetricRow(
                    suite, m.metric, m.aggregation, m.higher_is_better, _is_binary(store, run, m.metric),
                    [None] * n, [0] * n, [None] * (n - 1),
                )  # fmt: skip
            row.values[k] = m.summary
            row.errors[k] = m.n_errors
    base = runs[0]
    for k, run in enumerate(runs[1:]):
        if base is None or run is None:
            continue
        who = "" if n == 2 else f"{labels[k + 1]}: "
        try:
            comps = compare_runs(store, base.run_id, run.run_id, k=0, allow=allow)[2]
        except UserError as e:  # measured differently (harness.measurement), or unlike suites
            notes.append(f"suite '{suite}': {who}no paired comparison ({e})")
            comps = []
        from harness.measurement import comparability_lines, comparability_record

        notes.extend(
            f"suite '{suite}': {who}{line}" for line in comparability_lines(comparability_record(comps))
        )
        for c in comps:
            if c.metric in by_metric:
                by_metric[c.metric].comparisons[k] = c
    return list(by_metric.values())


def _is_binary(store: Store, run: RunRecord, metric: str) -> bool:
    return next((m["binary"] for m in store.run_metrics(run.run_id) if m["metric"] == metric), False)


# -- per-example rows ----------------------------------------------------------------------------
def _run_rows(store: Store, run: RunRecord) -> dict[str, tuple]:
    return {r[0]: r for r in q.example_rows(store, run.run_id)}


def _run_scores(store: Store, run: RunRecord) -> dict[tuple[str, str], tuple]:
    return {(r[0], r[1]): r[2:] for r in q.score_notes(store, run.run_id)}


def examples_payload(store: Store, runs: ReportRuns, rows: list[MetricRow]) -> dict[str, Any]:
    """The per-example viewer's data (embedded as JSON; report.js reads it by position)."""
    suites = [
        _examples(store, name, runs.runs_of(name), [r for r in rows if r.suite == name])
        for name in runs.suites
    ]
    return {"sides": len(runs.sides), "slots": runs.slots, "suites": suites, "labels": runs.labels}


def _examples(
    store: Store, suite: str, runs: list[RunRecord | None], rows: list[MetricRow]
) -> dict[str, Any]:
    """One suite's examples as compact arrays: [id, prompt, reference, outputs × S, errors × S,
    scores × S, extra], S = max(2, sides): slot 0 is always the baseline, slot k the k-th
    candidate, even when one is missing (report.js reads them by position)."""
    metrics = [r.metric for r in rows]
    slots = max(2, len(runs))
    runs = list(runs) + [None] * (slots - len(runs))
    data = [_run_rows(store, r) if r else {} for r in runs]
    scores = [_run_scores(store, r) if r else {} for r in runs]
    ids = list(dict.fromkeys(eid for d in data for eid in d))
    prompts = [_prompt(next((d[eid] for d in data if eid in d), None)) for eid in ids]
    prefix, suffix = _common_affixes([p for p in prompts if p])
    examples = []
    for eid in ids:
        recs = [d.get(eid) for d in data]
        first = next(r for r in recs if r is not None)
        prompt = _prompt(first) or ""
        mid = prompt[len(prefix) : len(prompt) - len(suffix)] if prompt else ""
        ref = json.loads(first[5]) if first[5] else []
        ex: list[Any] = [eid, _cut(mid), [_cut(str(x)) for x in ref] if isinstance(ref, list) else _cut(ref)]
        outs: list[Any] = []
        errs: list[Any] = []
        vals: list[list[float | None] | None] = []
        extra: dict[str, Any] = {}
        for k, rec in enumerate(recs):
            outs.append(_cut(rec[3]) if rec and rec[3] is not None else None)
            errs.append(rec[4] if rec else None)
            if rec is None:
                vals.append(None)
                continue
            v: list[float | None] = []
            for i, m in enumerate(metrics):
                s = scores[k].get((eid, m))
                v.append(_num(s[0]) if s else None)
                if s and s[1]:
                    extra.setdefault("se", {}).setdefault(str(i), [None] * slots)[k] = s[1]
                if s and s[2]:
                    extra.setdefault("r", {}).setdefault(str(i), [None] * slots)[k] = _cut(s[2])
            vals.append(v)
        differs = [r for r in recs[1:] if recs[0] and r and _prompt(r) != _prompt(recs[0])]
        if differs:  # e.g. another chat template
            extra["pb"] = _cut(_prompt(differs[0]) or "")
        examples.append(ex + outs + errs + vals + [extra or None])
    run = next((r for r in runs if r is not None), None)
    assert run is not None, "a suite in the report has a run on at least one side"
    flagged = contaminated(store, run.suite_id)
    for ex in examples:
        if ex[0] in flagged:  # the viewer flags it: where the training data holds this example
            found = flagged[ex[0]]
            marks = [
                f"{m['method']} {m['score']:.2f} at {Path(m['file']).name}:{m['record']}" for m in found[:3]
            ]
            ex[-1] = (ex[-1] or {}) | {"c": marks}
    return {
        "name": suite,
        "kind": run.suite_kind,
        "contaminated": sorted(e for e in flagged if e in set(ids)),
        "metrics": [
            {"name": r.metric, "hib": r.higher_is_better, "agg": r.aggregation, "binary": r.binary}
            for r in rows
        ],
        "prefix": prefix,
        "suffix": suffix,
        "examples": examples,
    }


def _prompt(rec: tuple | None) -> str | None:
    """The rendered prompt, or the raw record when nothing was generated (e.g. a cached error)."""
    if rec is None:
        return None
    if rec[2] is not None:
        return rec[2]
    return rec[6] and json.dumps(json.loads(rec[6]), ensure_ascii=False)


def _common_affixes(texts: list[str]) -> tuple[str, str]:
    """The shared chat-template prefix and suffix of all prompts: stored once, not per example.

    Both are cut at line breaks (the suffix also at a "<|" special token), so what is left of
    each prompt is whole text: "…哪里？", not "…哪里" with the "？" that every example shares.
    """
    if len(texts) < 2:
        return "", ""
    prefix = os.path.commonprefix(texts)
    prefix = prefix[: prefix.rfind("\n") + 1]
    rest = [t[len(prefix) :] for t in texts]
    suffix = os.path.commonprefix([t[::-1] for t in rest])[::-1]
    # cut at a line break or a chat special token ("<|im_end|>"), whichever comes first
    cuts = [i for i in (suffix.find("\n"), suffix.find("<|")) if i >= 0]
    suffix = suffix[min(cuts) :] if cuts else ""
    return prefix, suffix


def _cut(text: Any) -> Any:
    if not isinstance(text, str) or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f" … [cut: {len(text):,} characters in the store]"


def _num(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.5g}")  # 5 significant digits: plenty to read, a third of the bytes


# -- models, lineage, runs -----------------------------------------------------------------------
def side_card(label: str, side: Side, store: Store, css: str) -> dict[str, Any]:
    """A model's card: spec, id, fingerprint, lineage (with its training runs), runs, badges."""
    model_id = next(iter(side.values())).model_id
    m = q.model_row(store, model_id)
    chain = []
    for link in lineage(store, model_id):
        t = get_training_run(store, link["training_run_id"]) if link["training_run_id"] else None
        chain.append({**link, "training": _training_info(t) if t else None})
    runs = []
    for name, run in sorted(side.items()):
        host, git_sha, versions = q.run_provenance(store, run.run_id)
        done, errors = store.counts(run.run_id)
        runs.append(
            {
                "suite": name,
                "kind": run.suite_kind,
                "run_id": run.run_id,
                "status": run.shown_status,
                "started": _ts(run.started_at),
                "ended": _ts(run.ended_at),
                "duration": _duration(run.started_at, run.ended_at),
                "host": host,
                "git_sha": (git_sha or "")[:10],
                "versions": versions,
                "done": done,
                "errors": errors,
                "limit": run.config.get("limit"),
            }
        )
    return {
        "label": label,
        "css": css,
        "model": {
            "model_id": m[0],
            "spec": m[1],
            "kind": m[2],
            "fingerprint": m[3][:12],
            "base_model_id": m[4],
            "adapter_path": m[5],
        },
        "lineage": chain,
        "runs": runs,
        "badges": candidate_badges(list(side.values())),  # adapter check, chat template (#17)
    }


def _training_info(t: Any) -> dict[str, Any]:
    cfg = t.config or {}
    lora, quant, train = cfg.get("lora") or {}, cfg.get("quantization") or {}, cfg.get("training") or {}
    method = f"{t.kind.upper()} · {'QLoRA' if quant.get('load_in_4bit') else 'LoRA'}"
    if lora:
        method += f" r={lora.get('r')} α={lora.get('alpha')}"
    facts = {
        "learning rate": train.get("learning_rate"),
        "steps": train.get("max_steps") or (f"{train.get('epochs')} epochs" if train.get("epochs") else None),
        "batch": train.get("batch_size"),
        "precision": train.get("precision"),
        "beta": cfg.get("beta"),
        "data": (cfg.get("data") or {}).get("train"),
    }
    return {
        "id": t.training_run_id,
        "name": t.name,
        "kind": t.kind,
        "status": t.status,
        "method": method,
        "facts": {k: v for k, v in facts.items() if v is not None},
        "dataset_hash": (t.dataset_hash or "")[:16],
        "seed": t.seed,
        "summary": t.summary,
        "config_json": json.dumps(cfg, indent=2, ensure_ascii=False, sort_keys=True, default=str),
    }


def training_runs(store: Store, sides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training runs in the models' lineage, with their logged curves."""
    out, seen = [], set()
    for side in sides:
        for link in side["lineage"]:
            t = link["training"]
            if t is None or t["id"] in seen:
                continue
            seen.add(t["id"])
            out.append({**t, "model": link["spec"], "logs": training_logs(store, t["id"])})
    return out


def _ts(value: Any) -> str:
    return "" if value is None else str(value)[:19]


def _duration(start: Any, end: Any) -> str:
    try:
        secs = (end - start).total_seconds()
    except TypeError:
        return ""
    return f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.1f} min"


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("tunegate", "duckdb", "jinja2", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
