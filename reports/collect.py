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
from harness.gate import CheckResult, GateResult
from harness.results import MetricComparison, compare_runs, summarize_run
from harness.store import RunRecord, Store
from harness.store.contamination import contaminated
from harness.store.db import one_row
from harness.store.training import get_training_run, lineage, training_logs
from reports.leaderboard import badges as candidate_badges
from reports.sides import Side

MAX_TEXT = 4000
"""Longest text kept per field of an example; longer ones are cut (and say so) to bound the file."""


@dataclass
class MetricRow:
    """One line of the scoreboard: a suite × metric, both sides, the paired delta, gate checks."""

    suite: str
    metric: str
    aggregation: str
    higher_is_better: bool
    binary: bool
    base: stats.Summary | None = None
    base_errors: int = 0
    cand: stats.Summary | None = None
    cand_errors: int = 0
    comparison: MetricComparison | None = None
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def verdict(self) -> str | None:
        """better | worse | ns (CI covers 0), or None without a paired comparison."""
        if self.comparison is None:
            return None
        improved = self.comparison.paired.improved
        return "ns" if improved is None else ("better" if improved else "worse")


@dataclass
class ReportData:
    title: str
    sides: list[dict[str, Any]]
    """Per side: label, model (spec, id, lineage with training runs) and its runs."""
    suites: list[str]
    rows: list[MetricRow]
    gate: GateResult | None
    training: list[dict[str, Any]]
    """Training runs in the models' lineage, with their logged curves."""
    examples: dict[str, Any]
    """The per-example viewer's data (embedded as JSON)."""
    notes: list[str]
    versions: dict[str, str]
    clean: list[dict[str, Any]] = field(default_factory=list)
    """Per contaminated suite: the scoreboard recomputed on the examples no scan flagged."""
    latency: dict[str, Any] | None = None
    """The sides' latest load runs, drawn (reports.latency; None: no side was put under load)."""


def collect(
    store: Store,
    base: Side,
    cand: Side | None,
    gate: GateResult | None = None,
    allow: frozenset[str] | set[str] = frozenset(),
) -> ReportData:
    """Everything the template needs, from stored rows only. `allow`: measurement mismatches
    allowed by name (harness.measurement); a pair measured differently otherwise gets no
    comparison, only a note saying why."""
    suites = sorted(set(base) | set(cand or {}))
    notes: list[str] = []
    rows: list[MetricRow] = []
    suites_data = []
    clean: list[dict[str, Any]] = []
    checks: dict[tuple[str, str], list[CheckResult]] = {}
    for c in gate.checks if gate else []:
        checks.setdefault((c.suite, c.metric), []).append(c)
    for name in suites:
        ra, rb = base.get(name), (cand or {}).get(name)
        if cand is not None and (ra is None or rb is None):
            notes.append(f"suite '{name}' was run only for the {'candidate' if ra is None else 'base'}")
        suite_rows = _metric_rows(store, name, ra, rb, notes, allow)
        for r in suite_rows:
            r.checks = checks.get((name, r.metric), [])
        rows += suite_rows
        suites_data.append(_examples(store, name, ra, rb, suite_rows))
        if ra is not None and rb is not None and suites_data[-1].get("contaminated"):
            clean.append(_clean_board(store, name, ra, rb, set(suites_data[-1]["contaminated"]), allow))
    sides = [_side("base" if cand else "model", base, store)]
    if cand is not None:
        sides.append(_side("candidate", cand, store))
    training = _training(store, sides)
    from reports.latency import latency_section

    latency = latency_section(store, [(s["label"], s["model"]["model_id"]) for s in sides])
    title = " vs ".join(s["model"]["spec"] for s in sides)
    return ReportData(
        title=title,
        sides=sides,
        suites=suites,
        rows=rows,
        gate=gate,
        training=training,
        examples={"sides": len(sides), "suites": suites_data},
        notes=notes,
        versions=_versions(),
        clean=clean,
        latency=latency,
    )


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
    ra: RunRecord | None,
    rb: RunRecord | None,
    notes: list[str],
    allow: frozenset[str] | set[str] = frozenset(),
) -> list[MetricRow]:
    by_metric: dict[str, MetricRow] = {}
    for side, run in (("base", ra), ("cand", rb)):
        if run is None:
            continue
        for m in summarize_run(store, run.run_id)[1]:
            row = by_metric.get(m.metric)
            if row is None:
                row = by_metric[m.metric] = MetricRow(
                    suite, m.metric, m.aggregation, m.higher_is_better, _is_binary(store, run, m.metric)
                )
            setattr(row, side, m.summary)
            setattr(row, f"{side}_errors", m.n_errors)
    if ra is not None and rb is not None:
        try:
            comps = compare_runs(store, ra.run_id, rb.run_id, k=0, allow=allow)[2]
        except UserError as e:  # measured differently (harness.measurement), or unlike suites
            notes.append(f"suite '{suite}': no paired comparison ({e})")
            comps = []
        from harness.api import comparability_record
        from harness.measurement import comparability_lines

        notes.extend(f"suite '{suite}': {line}" for line in comparability_lines(comparability_record(comps)))
        for c in comps:
            by_metric[c.metric].comparison = c
    return list(by_metric.values())


def _is_binary(store: Store, run: RunRecord, metric: str) -> bool:
    return next((m["binary"] for m in store.run_metrics(run.run_id) if m["metric"] == metric), False)


# -- per-example rows ----------------------------------------------------------------------------
def _run_rows(store: Store, run: RunRecord) -> dict[str, tuple]:
    rows = store.db.execute(
        "SELECT re.example_id, e.position, g.prompt, g.output, coalesce(re.error, g.error),"
        " e.reference, e.input FROM run_examples re JOIN runs r USING (run_id)"
        " LEFT JOIN generations g USING (cache_key)"
        " LEFT JOIN examples e ON e.suite_id = r.suite_id AND e.example_id = re.example_id"
        " WHERE re.run_id = ? ORDER BY e.position, re.example_id",
        [run.run_id],
    ).fetchall()
    return {r[0]: r for r in rows}


def _run_scores(store: Store, run: RunRecord) -> dict[tuple[str, str], tuple]:
    rows = store.db.execute(
        "SELECT example_id, metric, value, error, coalesce(json_extract_string(detail, '$.rationale'),"
        " json_extract_string(detail, '$.reason')) FROM scores WHERE run_id = ?",
        [run.run_id],
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def _examples(
    store: Store, suite: str, ra: RunRecord | None, rb: RunRecord | None, rows: list[MetricRow]
) -> dict[str, Any]:
    """One suite's examples as compact arrays: the viewer reads them by position (see report.js)."""
    metrics = [r.metric for r in rows]
    runs = (ra, rb)  # slot 0 is always the base, slot 1 the candidate, even when one is missing
    data = [_run_rows(store, r) if r else {} for r in runs]
    scores = [_run_scores(store, r) if r else {} for r in runs]
    ids = list(dict.fromkeys(eid for d in data for eid in d))
    prompts = [_prompt(data[0].get(eid) or data[1].get(eid)) for eid in ids]
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
                    extra.setdefault("se", {}).setdefault(str(i), [None, None])[k] = s[1]
                if s and s[2]:
                    extra.setdefault("r", {}).setdefault(str(i), [None, None])[k] = _cut(s[2])
            vals.append(v)
        if recs[0] and recs[1] and _prompt(recs[1]) != _prompt(recs[0]):  # e.g. another chat template
            extra["pb"] = _cut(_prompt(recs[1]) or "")
        examples.append(ex + outs + errs + vals + [extra or None])
    run = ra or rb
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
def _side(label: str, side: Side, store: Store) -> dict[str, Any]:
    model_id = next(iter(side.values())).model_id
    m = one_row(
        store.db.execute(
            "SELECT model_id, spec, kind, fingerprint, base_model_id, adapter_path, created_at FROM models"
            " WHERE model_id = ?",
            [model_id],
        )
    )
    chain = []
    for link in lineage(store, model_id):
        t = get_training_run(store, link["training_run_id"]) if link["training_run_id"] else None
        chain.append({**link, "training": _training_info(t) if t else None})
    runs = []
    for name, run in sorted(side.items()):
        host, git_sha, versions = one_row(
            store.db.execute("SELECT host, git_sha, versions FROM runs WHERE run_id = ?", [run.run_id])
        )
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
                "versions": json.loads(versions or "{}"),
                "done": done,
                "errors": errors,
                "limit": run.config.get("limit"),
            }
        )
    return {
        "label": label,
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


def _training(store: Store, sides: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("tunegate", "duckdb", "jinja2", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
