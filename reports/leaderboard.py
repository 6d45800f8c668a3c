"""The leaderboard page: one baseline against N candidates, and checkpoint sweeps over steps.

One self-contained HTML file (inline CSS and SVG, no script, nothing fetched), read from the
store alone: suites × metrics × candidates with paired deltas and CIs, each candidate's gate
verdict, its adapter check (max |Δlogit|, a no-op badge) and chat-template badge, and for runs
that belong to a sweep the suite metric vs step beside train/eval loss with the best step marked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from harness.errors import UserError
from harness.secrets import scrub
from harness.store import RunRecord, Store
from reports import charts

COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


def candidate_facts(run: RunRecord) -> dict[str, Any]:
    """runs.config.backend.candidate of a run ({} for runs not made through an adapter view)."""
    return ((run.config or {}).get("backend") or {}).get("candidate") or {}


def badges(runs: list[RunRecord]) -> list[tuple[str, str, str]]:
    """(css class, text, tooltip) badges for a model's runs: adapter check, chat template."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for run in runs:
        facts = candidate_facts(run)
        chk = facts.get("adapter_check")
        if chk and "check" not in seen:
            seen.add("check")
            d = chk.get("max_abs_dlogit")
            if chk.get("noop"):
                out.append(
                    (
                        "fail",
                        f"no-op adapter (max |Δlogit| {d:.3g})",
                        "allowed with --allow-noop-adapter: its scores are the base's",
                    )
                )
            else:
                out.append(
                    (
                        "pass",
                        f"adapter applies: max |Δlogit| {d:.3g}",
                        f"on probe prompts, tolerance {chk.get('tolerance')}",
                    )
                )
        tpl = facts.get("chat_template")
        if tpl and tpl.get("match") is False and "tpl" not in seen:
            seen.add("tpl")
            out.append(
                (
                    "fail",
                    "chat template ≠ training",
                    f"evaluated with {tpl.get('source')} ({str(tpl.get('sha256'))[:12]}), "
                    f"trained with {tpl.get('trained_source')} ({str(tpl.get('trained_sha256'))[:12]})",
                )
            )
        elif tpl and tpl.get("match") and "tpl" not in seen:
            seen.add("tpl")
            out.append(("pass", "trained chat template", str(tpl.get("sha256"))[:12]))
    return out


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )


PAGE = Path(__file__).parent / "templates" / "leaderboard.html.j2"


def _g(x: float | None) -> str:
    if x is None or x != x:
        return "–"
    x = float(x)
    return f"{x:.4g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.4f}"


def _model_entry(store: Store, label: str, runs: dict[str, RunRecord], gate: Any = None) -> dict[str, Any]:
    first = next(iter(runs.values()))
    g = None
    if gate is not None:
        g = {"passed": gate.passed, "n": len(gate.checks), "failed": sum(not c.passed for c in gate.checks)}
    return {
        "label": label,
        "model_id": first.model_id,
        "spec": first.model_spec,
        "badges": badges(list(runs.values())),
        "gate": g,
    }


def sweep_data(store: Store, sweep_id: str) -> dict[str, Any]:
    """Per step: each suite's metrics; the best step per metric; loss curves; SVG charts."""
    from harness.gate.best import sweep_runs
    from harness.results import summarize_run
    from harness.store.queries_reports import has_training_logs
    from harness.store.training import training_logs

    rows = [r for r in sweep_runs(store, sweep=sweep_id)]
    if not rows:
        raise UserError(f"no completed runs of sweep '{sweep_id}' in {store.path}")
    values: dict[int, dict[str, float]] = {}
    models: dict[int, str] = {}
    higher: dict[str, bool] = {}
    losses: dict[str, list[tuple[float, float]]] = {"train loss": [], "eval loss": []}
    training_run_id = None
    for run_id, model_id, suite, _, step, _, _ in rows:
        run, metrics = summarize_run(store, run_id)
        models[step] = model_id
        sweep = candidate_facts(run).get("sweep") or {}
        training_run_id = training_run_id or sweep.get("training_run_id")
        for key, label in (("train_loss", "train loss"), ("eval_loss", "eval loss")):
            if sweep.get(key) is not None and step not in [x for x, _ in losses[label]]:
                losses[label].append((step, float(sweep[key])))
        for m in metrics:
            name = f"{suite}/{m.metric}"
            values.setdefault(step, {})[name] = m.summary.value
            higher[name] = bool(m.higher_is_better)
    # the run's own step log is fuller than the checkpoints' snapshots
    if training_run_id and has_training_logs(store, training_run_id):
        losses = {
            "train loss": [
                (r["step"], r["loss"])
                for r in training_logs(store, training_run_id, "train")
                if r["loss"] is not None
            ],
            "eval loss": [
                (r["step"], r["loss"])
                for r in training_logs(store, training_run_id, "eval")
                if r["loss"] is not None
            ],
        }
    columns = sorted({k for v in values.values() for k in v})
    best: dict[str, int] = {}
    for col in columns:
        scored = [
            (s, v[col]) for s, v in values.items() if s != 0 and col in v and v[col] == v[col]
        ]  # not the base
        if scored:
            pick = max(scored, key=lambda t: t[1]) if higher[col] else min(scored, key=lambda t: t[1])
            best[col] = pick[0]
    points = [
        {
            "step": step,
            "model_id": models[step],
            "cells": [{"text": _g(values[step].get(c)), "best": best.get(c) == step} for c in columns],
        }
        for step in sorted(values)
    ]
    svgs = []
    for k, col in enumerate(columns):
        series = [
            (
                col,
                COLOURS[k % len(COLOURS)],
                sorted((s, v[col]) for s, v in values.items() if col in v and v[col] == v[col]),
            )
        ]
        if col in best:
            series.append((f"best: step {best[col]}", "#f59e0b", [(best[col], values[best[col]][col])]))
        svgs.append(Markup(charts.line_chart(f"{col} vs step", series, "suite metric")))
    loss_series = [
        (name, COLOURS[(i + 4) % len(COLOURS)], sorted(pts))
        for i, (name, pts) in enumerate(losses.items())
        if pts
    ]
    if loss_series:
        svgs.append(Markup(charts.line_chart("train / eval loss", loss_series, "loss")))
    return {
        "sweep_id": sweep_id,
        "training_run_id": training_run_id,
        "columns": columns,
        "points": points,
        "charts": svgs,
        "best": best,
    }


def render_leaderboard(
    store: Store,
    baseline: list[str],
    candidates: list[Any],
    *,
    gates: list[tuple[Any, Any]] | None = None,
    require: str = "any",
    sweeps: list[str] | None = None,
) -> str:
    from harness.gate.leaderboard import leaderboard, verdict

    base, sides, rows = leaderboard(store, baseline, candidates)
    gate_by = {c.model_id: g for c, g in gates} if gates else {}
    cands = [
        _model_entry(store, c.label, side, gate_by.get(c.model_id)) for c, side in zip(candidates, sides)
    ]
    found = list(sweeps or [])
    for side in [base, *sides]:
        for run in side.values():
            sid = (candidate_facts(run).get("sweep") or {}).get("sweep_id")
            if sid and sid not in found:
                found.append(sid)
    table = []
    for r in rows:
        cells: list[dict[str, str] | None] = []
        for c in r.cells:
            if c is None:
                cells.append(None)
                continue
            classes: dict[bool | None, str] = {True: "better", False: "worse"}
            cls = classes.get(c.improved, "")
            cells.append(
                {
                    "value": _g(c.value),
                    "delta": f"{c.delta:+.4f}",
                    "lo": _g(c.ci_low),
                    "hi": _g(c.ci_high),
                    "cls": cls,
                }
            )
        table.append(
            {
                "suite": r.suite,
                "metric": r.metric,
                "higher": r.higher_is_better,
                "baseline": _g(r.baseline),
                "cells": cells,
            }
        )
    html = (
        _env()
        .from_string(PAGE.read_text(encoding="utf-8"))
        .render(
            baseline=_model_entry(store, "baseline", base),
            candidates=cands,
            rows=table,
            gates=bool(gates),
            verdict=verdict(gates, require) if gates else None,  # type: ignore[arg-type]
            require=require,
            sweeps=[sweep_data(store, s) for s in found],
            now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            store=str(store.path),
        )
    )
    return scrub(html)


def write_leaderboard(
    store: Store, baseline: list[str], candidates: list[Any], out: str | Path, **kw: Any
) -> Path:
    path = Path(out)
    html = render_leaderboard(store, baseline, candidates, **kw)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the report to {path}: {e.strerror or e}") from None
    return path
