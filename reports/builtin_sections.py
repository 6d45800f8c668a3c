"""tunegate's own report sections, registered as a plugin's would be (reports.sections).

Each reads the store through reports.collect and shapes what its partial draws; nothing here
calls a model or recomputes a confidence interval.
"""

from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup

from harness.gate import CheckResult, GateResult
from harness.gate.evaluate import DELTA_CHECKS
from harness.stats import QUANTITY
from harness.store import Store
from reports import charts
from reports import collect as c
from reports.sections import SectionContext, section
from reports.sides import ReportRuns


# -- shared between sections (computed once per report) -------------------------------------------
def cards(store: Store, runs: ReportRuns, ctx: SectionContext) -> list[dict[str, Any]]:
    """One card per side: model, lineage, runs, badges."""

    def make() -> list[dict[str, Any]]:
        css = ["model"] if len(runs.sides) == 1 else ["base"] + ["candidate"] * (len(runs.sides) - 1)
        return [c.side_card(runs.labels[k], side, store, css[k]) for k, side in enumerate(runs.sides)]

    return ctx.memo("cards", make)


def rows(store: Store, runs: ReportRuns, ctx: SectionContext) -> list[c.MetricRow]:
    """The scoreboard's rows: a suite × metric each, every side and each candidate's comparison."""

    def make() -> list[c.MetricRow]:
        checks: dict[tuple[str, str], list[CheckResult]] = {}
        for chk in runs.gate.checks if runs.gate else []:
            checks.setdefault((chk.suite, chk.metric), []).append(chk)
        return c.metric_rows(store, runs, ctx.notes, checks)

    return ctx.memo("rows", make)


def examples(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any]:
    """The per-example viewer's data."""
    return ctx.memo("examples", lambda: c.examples_payload(store, runs, rows(store, runs, ctx)))


def colours(n: int) -> list[str]:
    """A colour per side: the base grey-blue, the candidate blue, more candidates their own."""
    if n == 1:
        return [charts.CAND]
    return [charts.BASE, charts.CAND] + [charts.MORE[k % len(charts.MORE)] for k in range(n - 2)]


# -- the sections, in page order --------------------------------------------------------------------
@section("overview", title="Models", order=10)
def overview(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any]:
    return {"sides": cards(store, runs, ctx)}


@section("scoreboard", title="Scoreboard", order=20)
def scoreboard(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any]:
    metric_rows = rows(store, runs, ctx)
    index = {name: i for i, name in enumerate(runs.suites)}
    return {
        "rows": _rows(metric_rows, index, len(runs.sides)),
        "clean": _clean(c.clean_boards(store, runs, examples(store, runs, ctx))),
        "n_candidates": len(runs.sides) - 1,
    }


@section("gate", title="Gate", order=30)
def gate(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any] | None:
    if runs.gate is not None:
        return {"each": [{"label": None, **_gate(runs.gate)}]}
    if runs.gates:
        each = [{"label": runs.labels[k + 1], **_gate(g)} for k, g in enumerate(runs.gates) if g is not None]
        return {"each": each} if each else None
    return None


@section("charts", title="Charts", order=40)
def score_charts(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any]:
    metric_rows = rows(store, runs, ctx)
    cols = colours(len(runs.sides))
    by_suite: dict[str, list[Markup]] = {}
    for r in metric_rows:
        bars = [(runs.labels[k], cols[k], v) for k, v in enumerate(r.values)]
        title = f"{r.metric} {'↑' if r.higher_is_better else '↓'}"
        by_suite.setdefault(r.suite, []).append(Markup(charts.score_panel(title, bars)))
    forest = _forest(metric_rows, runs.labels) if runs.compared else ""
    return {
        "legend": list(zip(runs.labels, cols)),
        "score_charts": list(by_suite.items()),
        "forest": Markup(forest) if forest else None,
    }


@section("latency", title="Latency", order=50)
def latency(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any] | None:
    from reports.latency import latency_section

    return latency_section(store, [(s["label"], s["model"]["model_id"]) for s in cards(store, runs, ctx)])


@section("training", title="Training", order=60)
def training(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any] | None:
    found = c.training_runs(store, cards(store, runs, ctx))
    return {"runs": _training_charts(found)} if found else None


@section("steps", title="Steps", order=65)
def steps(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any] | None:
    """Checkpoint sweeps (the runs' own and those asked for): each metric vs training step."""
    from reports.leaderboard import candidate_facts, sweep_data

    found = list(runs.sweeps)
    for side in runs.sides:
        for run in side.values():
            sid = (candidate_facts(run).get("sweep") or {}).get("sweep_id")
            if sid and sid not in found:
                found.append(sid)
    return {"sweeps": [sweep_data(store, s) for s in found]} if found else None


@section("distributions", title="Distributions", order=70)
def distributions(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any]:
    payload = examples(store, runs, ctx)
    cols = colours(len(runs.sides))
    val = 3 + 2 * payload["slots"]  # where the scores start in an example (report.js: VAL)
    out = []
    for s in payload["suites"]:
        svgs = []
        for i, m in enumerate(s["metrics"]):
            series = []
            for k, label in enumerate(runs.labels):
                vals = [ex[val + k][i] for ex in s["examples"] if ex[val + k] and ex[val + k][i] is not None]
                series.append((label, cols[k], vals))
            svgs.append(Markup(charts.histogram(m["name"], series, binary=m["binary"])))
        out.append((s["name"], svgs))
    return {"dist_charts": out}


@section("examples", title="Examples", order=80, js="report.js")
def viewer(store: Store, runs: ReportRuns, ctx: SectionContext) -> dict[str, Any]:
    ctx.page_data.update(examples(store, runs, ctx))
    return {}


# -- shaping --------------------------------------------------------------------------------------
def _g(x: float, digits: int = 4) -> str:
    """Significant digits: a perplexity of 363.98 and an F1 of 0.1333 take the same room."""
    return "–" if x != x else f"{x:.{digits}g}"


def _ci(s: Any) -> str:
    if s is None or not s.n or math.isnan(s.ci_low):
        return ""
    return f"95% CI [{_g(s.ci_low)}, {_g(s.ci_high)}]"


def _delta(r: c.MetricRow, k: int) -> dict[str, Any]:
    """Candidate k's paired delta against the base, as a scoreboard cell."""
    comp = r.comparisons[k] if k < len(r.comparisons) else None
    p = comp.paired if comp else None
    value = r.values[k + 1] if k + 1 < len(r.values) else None
    return {
        "value": _g(value.value, 5) if value else "–",
        "value_ci": _ci(value),
        "verdict": r.verdict_of(k),
        "delta": f"{p.delta:+.4g}" if p and not math.isnan(p.delta) else "–",
        "delta_ci": f"95% {_ci_name(p.ci_method)}CI [{_g(p.ci_low)}, {_g(p.ci_high)}]" if p and p.n else "",
        "test": f"{p.test} p={p.p_value:.3g}" if p and p.n else "–",
        "test_title": QUANTITY.get(p.test, "") if p and p.n else "",
        "mde": _mde(p),
        "wlt": f"{p.wins} / {p.losses} / {p.ties}" if p else "–",
    }


def _rows(metric_rows: list[c.MetricRow], suite_index: dict[str, int], n_sides: int) -> list[dict[str, Any]]:
    out, last = [], None
    for r in metric_rows:
        first = _delta(r, 0)
        out.append(
            {
                "suite": r.suite,
                "suite_index": suite_index[r.suite],
                "first": r.suite != last,
                "metric": r.metric,
                "dir": "↑" if r.higher_is_better else "↓",
                "base": _g(r.base.value, 5) if r.base else "–",
                "base_ci": _ci(r.base),
                "cand": first["value"],
                "cand_ci": first["value_ci"],
                "n": r.base.n if r.base else 0,
                **{k: first[k] for k in ("verdict", "delta", "delta_ci", "test", "test_title", "mde", "wlt")},
                "errors": f"{r.base_errors} / {r.cand_errors}"
                if r.comparison or r.cand
                else str(r.base_errors),
                "all_errors": " / ".join(str(e) for e in r.errors),
                "checks": r.checks,
                "cells": [_delta(r, k) for k in range(n_sides - 1)],
            }
        )
        last = r.suite
    return out


def _mde(p: Any) -> str:
    """The smallest delta this suite could detect (80% power, alpha 0.05), beside each delta."""
    from harness.gate.power import for_paired

    pw = for_paired(p, None, 0.05) if p is not None else None
    return "" if pw is None else f"MDE {pw.mde:.3g} (80% power)"


def _clean(boards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for board in boards:
        rows = []
        for comp in board["comparisons"]:
            p = comp.paired
            verdict = "ns" if p.improved is None else ("better" if p.improved else "worse")
            rows.append({
                "metric": comp.metric, "base": _g(p.baseline, 5), "cand": _g(p.candidate, 5),
                "delta": f"{p.delta:+.4g}" if p.n else "–", "verdict": verdict if p.n else None,
                "delta_ci": f"95% {_ci_name(p.ci_method)}CI [{_g(p.ci_low)}, {_g(p.ci_high)}]" if p.n else "",
                "test": f"{p.test} p={p.p_value:.3g}" if p.n else "–", "n": p.n,
            })  # fmt: skip
        n = board["n_clean"] + board["n_contaminated"]
        out.append({**board, "n": n, "rows": rows})
    return out


def _gate(g: GateResult) -> dict[str, Any]:
    checks: list[dict[str, Any]] = [
        {
            "passed": chk.passed,
            "suite": chk.suite,
            "metric": chk.metric,
            "check": chk.check,
            "threshold": f"{chk.threshold:g}",
            "observed": "–" if chk.check in ("max_drop", "min_delta") else f"{chk.observed:.4g}",
            # one sign convention with compare and the scoreboard: candidate − baseline
            "delta": f"{chk.comparison.paired.delta:+.4g}"
            if chk.comparison is not None and chk.check in DELTA_CHECKS
            else "–",
            "reason": chk.reason,
        }
        for chk in sorted(g.checks, key=lambda chk: chk.passed)
    ]
    n_passed = sum(chk["passed"] for chk in checks)
    return {
        "policy": g.policy,
        "passed": g.passed,
        "checks": checks,
        "n": len(checks),
        "n_passed": n_passed,
        "warnings": list(g.warnings),
    }  # fmt: skip  (underpowered suites, degenerate outputs)


def _forest(metric_rows: list[c.MetricRow], labels: list[str]) -> str:
    many = len(labels) > 2
    items = [
        {
            "label": f"{r.suite} · {r.metric}" + (f" · {labels[k + 1]}" if many else ""),
            "delta": comp.paired.delta,
            "ci_low": comp.paired.ci_low,
            "ci_high": comp.paired.ci_high,
            "hib": r.higher_is_better,
            "verdict": r.verdict_of(k),
        }
        for r in metric_rows
        for k, comp in enumerate(r.comparisons)
        if comp is not None and comp.paired.n
    ]
    return charts.forest(items) if items else ""


def _training_charts(training: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t in training:
        logs = t["logs"]

        def series(split: str, key: str) -> list[tuple[float, float]]:
            return [(r["step"], r[key]) for r in logs if r["split"] == split and r[key] is not None]  # noqa: B023

        svgs = []
        loss = [
            ("train loss", charts.BASE, series("train", "loss")),
            ("eval loss", charts.CAND, series("eval", "loss")),
        ]
        if any(s for _, _, s in loss):
            svgs.append(Markup(charts.line_chart("loss", [x for x in loss if x[2]], "optimizer step")))
        margin = [
            ("train margin", charts.BASE, series("train", "reward_margin")),
            ("eval margin", charts.CAND, series("eval", "reward_margin")),
        ]
        if any(s for _, _, s in margin):
            svgs.append(
                Markup(charts.line_chart("DPO reward margin", [x for x in margin if x[2]], "optimizer step"))
            )
        acc = [("eval accuracy", charts.CAND, series("eval", "reward_accuracy"))]
        if acc[0][2]:
            svgs.append(Markup(charts.line_chart("DPO reward accuracy", acc, "optimizer step")))
        out.append({**t, "charts": svgs})
    return out


def _ci_name(method: str) -> str:
    """The interval's method, shown unless it is the default paired percentile bootstrap."""
    return "" if method == "bootstrap" else {"bca": "BCa ", "t": "t "}.get(method, f"{method} ")
