"""`tunegate import lm-eval`: results and samples written by `lm_eval --output_path DIR
--log_samples`, stored as runs so lm-eval runs made elsewhere join comparisons and gates.

One results file (one lm_eval invocation) becomes one run. Its suite id is derived from the
tasks, docs and prompts (lm-eval's per-sample hashes), so two imports of the same tasks on
the same docs (e.g. base and candidate) are runs of the same suite and can be compared.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.errors import UserError
from harness.lm_eval_rows import LmMetric, aggregation_name, arguments, jsonable, reported, task_rows
from harness.store import Store, queries_gate

_DATE = re.compile(r"_(\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.json$")
_KEEP = (
    "results",
    "groups",
    "group_subtasks",
    "configs",
    "versions",
    "n-shot",
    "higher_is_better",
    "n-samples",
)


@dataclass(frozen=True)
class Imported:
    run_id: str
    results_file: Path
    n_examples: int
    already: bool
    """True when this results file was imported before (nothing new was stored)."""
    mismatches: list[str]
    """Metrics whose aggregate over the stored rows differs from lm-eval's (should be empty)."""


def _date(results_file: Path) -> str:
    """The date in a results file's name (the files are picked by it, so it is there)."""
    m = _DATE.search(results_file.name)
    assert m is not None, "only files whose name has a date are sorted"
    return m[1]


def find_results(path: Path) -> list[Path]:
    """Results files under `path` (or `path` itself), oldest first."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError("no such file or folder", path=path)
    files = sorted((p for p in path.rglob("*.json") if _DATE.search(p.name)), key=_date)
    if not files:
        raise UserError(
            "no lm-eval results file (results_<date>.json) here; run lm_eval with --output_path", path=path
        )
    return files


def import_results(store: Store, results_file: Path, model_name: str | None = None) -> Imported:
    """Store one lm-eval results file and its samples files as a completed run."""
    from harness.models.resolve import model_id_for
    from harness.runner.run import new_run_id

    raw = results_file.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    found = queries_gate.imported_run(store, sha)
    if found:
        return Imported(found[0], results_file, found[1], True, [])
    try:
        data = json.loads(raw)
        leaves = list(data["configs"])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"not an lm-eval results file ({e})", path=results_file) from None
    samples = {leaf: _samples(results_file, leaf) for leaf in leaves}
    metrics = {leaf: [m for m in _metrics(data, leaf) if m.supported] for leaf in leaves}
    otypes = {leaf: data["configs"][leaf].get("output_type", "") for leaf in leaves}

    cfg = data.get("config") or {}
    name = model_name or data.get("model_name") or str(cfg.get("model", "unknown"))
    ident = {k: cfg.get(k) for k in ("model", "model_args", "model_sha", "model_dtype")} | {"name": name}
    fp = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
    model_id, spec = model_id_for(fp), f"lm-eval:{name}"
    store.upsert_model(model_id, spec, "lm-eval", fp, load_options=jsonable(ident))
    sid, n = _register_suite(store, results_file, data, samples, metrics, otypes)

    run_id = new_run_id()
    config = {"source": "lm-eval import", "results_file": str(results_file), "import_sha256": sha}
    config |= {"model_spec": spec, "lm_eval": jsonable({k: data[k] for k in _KEEP if k in data})}
    store.create_run(
        run_id,
        model_id,
        sid,
        config=config,
        seed=cfg.get("fewshot_seed"),
        versions={k: str(data[k]) for k in ("lm_eval_version", "transformers_version") if data.get(k)},
        git_sha=data.get("git_hash"),
        host="",
        n_examples=n,
        metrics=[m.run_metric() for ms in metrics.values() for m in ms],
    )
    try:
        for leaf, rows in samples.items():
            store.write_batch(run_id, *task_rows(leaf, metrics[leaf], rows, otypes[leaf], model_id, fp, None))
    except Exception as e:
        store.mark_run(run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    store.mark_run(run_id, "completed")
    return Imported(run_id, results_file, n, False, check_aggregates(store, run_id))


def _register_suite(
    store: Store, results_file: Path, data: dict, samples: dict, metrics: dict, otypes: dict
) -> tuple[str, int]:
    """(suite id, number of examples); the id hashes docs, prompts, targets and metric names."""
    examples, h = [], hashlib.sha256()
    for leaf, rows in samples.items():
        for doc_id, group in _by_doc(rows).items():
            s = group[0]
            h.update(
                f"{leaf}/{doc_id}:{s.get('doc_hash')}{s.get('prompt_hash')}{s.get('target_hash')}".encode()
            )
            examples.append((f"{leaf}/{doc_id}", *_example(leaf, doc_id, s, otypes[leaf])))
    h.update(json.dumps(sorted(m.name for ms in metrics.values() for m in ms)).encode())
    tops = _top_level(data, list(samples))
    name = ("lm-eval-" + "-".join(tops))[:60]
    sid = f"{name}-{h.hexdigest()[:10]}"
    config = {"name": name, "kind": "benchmark", "tasks": tops, "source": "lm-eval import"}
    store.upsert_suite(sid, name, "benchmark", h.hexdigest(), str(results_file), config, examples)
    return sid, len(examples)


def check_aggregates(store: Store, run_id: str, tol: float = 1e-9) -> list[str]:
    """Metrics whose aggregate over stored rows is not lm-eval's reported one (within `tol`)."""
    run = store.get_run(run_id)
    results = (run.config.get("lm_eval") or {}).get("results", {})
    bad = []
    for m in store.run_metrics(run_id):
        want, _ = reported(results, m["spec"]["args"])
        rows = [r for r in store.scores(run_id, m["metric"]) if r[3] is None]
        values = np.asarray([r[1] for r in rows], dtype=np.float64)  # as ScoreArrays coerces them
        weights = np.asarray([r[2] for r in rows], dtype=np.float64)
        got = stats.aggregate(stats.ScoreArrays(values, weights), m["aggregation"])
        if not isinstance(want, (int, float)) or not math.isclose(got, want, rel_tol=tol, abs_tol=tol):
            bad.append(f"{m['metric']}: stored rows give {got!r}, lm-eval reported {want!r}")
    return bad


def _samples(results_file: Path, leaf: str) -> list[dict[str, Any]]:
    date = _DATE.search(results_file.name)
    path = results_file.parent / f"samples_{leaf}_{date[1] if date else ''}.jsonl"
    if not path.is_file():
        raise UserError(
            f"no samples file for task '{leaf}' ({path.name}); run lm_eval with --log_samples",
            path=results_file,
        )
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise UserError(f"not valid JSON ({e})", path=path, line=n) from None
    return out


def _metrics(data: dict[str, Any], leaf: str) -> list[LmMetric]:
    """The (metric, filter) pairs lm-eval reported for a task, with their aggregations."""
    from lm_eval.api.registry import get_metric_aggregation

    declared = {m.get("metric"): m.get("aggregation") for m in data["configs"][leaf].get("metric_list") or []}
    hib = (data.get("higher_is_better") or {}).get(leaf, {})
    out = []
    for key in (data.get("results") or {}).get(leaf, {}):
        metric, comma, filt = key.partition(",")
        if not comma or metric.endswith("_stderr"):
            continue
        agg = declared.get(metric)
        agg = agg if isinstance(agg, str) else aggregation_name(get_metric_aggregation(metric))
        out.append(LmMetric(leaf, metric, filt, agg or "custom", bool(hib.get(metric, True))))
    return out


def _by_doc(samples: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        out.setdefault(s["doc_id"], []).append(s)
    return out


def _example(leaf: str, doc_id: int, s: dict[str, Any], otype: str) -> tuple[dict[str, Any], list[str]]:
    args = arguments(s)
    record = {
        "task": leaf,
        "doc_id": doc_id,
        "doc": s.get("doc"),
        "prompt": str(args[0][0]) if args else None,
    }
    target = str(s.get("target", ""))
    if otype == "loglikelihood_rolling":
        return record, []
    if otype == "multiple_choice" and target.isdigit() and int(target) < len(args):
        return record, [str(args[int(target)][1]).strip()]
    return record, [target]


def _top_level(data: dict[str, Any], leaves: list[str]) -> list[str]:
    """Groups that are no other group's member, then tasks in no group."""
    groups = data.get("group_subtasks") or {}
    members = {c for cs in groups.values() for c in cs}
    return [g for g, cs in groups.items() if cs and g not in members] + [
        t for t in leaves if t not in members
    ]
