"""Turn collected report data into one self-contained HTML page (Jinja2, inline CSS/JS/SVG)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from harness.gate.evaluate import DELTA_CHECKS
from harness.secrets import scrub
from harness.stats import QUANTITY
from reports import charts
from reports.collect import MetricRow, ReportData

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ value }} is HTML-escaped unless it is our own Markup (SVG)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def embed_json(data: Any) -> str:
    """JSON that is inert inside <script type="application/json">.

    '<' only ever occurs inside JSON strings, where \\u003c means the same character, so no
    '</script>' or '<!--' can end or confuse the script element whatever a model wrote.
    """
    text = scrub(json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: ReportData, store_path: str) -> str:
    """The page for collected data."""
    two = len(data.sides) == 2
    js = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    # Only our own script (by hash) may run, and nothing may be fetched: defence in depth
    # behind the escaping, which the browser test checks on its own.
    csp = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
    )
    suite_index = {name: i for i, name in enumerate(data.suites)}
    payload = {**data.examples, "labels": ["base", "candidate"] if two else ["model"]}
    context = {
        "title": data.title,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "store_path": store_path,
        "versions": data.versions,
        "notes": data.notes,
        "sides": data.sides,
        "two": two,
        "rows": _rows(data.rows, suite_index),
        "gate": _gate(data),
        "clean": _clean(data),
        "score_charts": _score_charts(data.rows, two),
        "forest": Markup(_forest(data.rows)) if two else None,
        "training": _training_charts(data.training),
        "latency": data.latency,
        "dist_charts": _dist_charts(payload, two),
        "css": Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
        "js": Markup(js),
        "csp": csp,
        "data_json": Markup(embed_json(payload)),
    }
    # Rows stored before keys were scrubbed on write, or keys set since: never on the page.
    return scrub(_env().get_template("report.html.j2").render(**context))


def _g(x: float, digits: int = 4) -> str:
    """Significant digits: a perplexity of 363.98 and an F1 of 0.1333 take the same room."""
    return "–" if x != x else f"{x:.{digits}g}"


def _ci(s: Any) -> str:
    if s is None or not s.n or math.isnan(s.ci_low):
        return ""
    return f"95% CI [{_g(s.ci_low)}, {_g(s.ci_high)}]"


def _rows(rows: list[MetricRow], suite_index: dict[str, int]) -> list[dict[str, Any]]:
    out, last = [], None
    for r in rows:
        c = r.comparison.paired if r.comparison else None
        out.append(
            {
                "suite": r.suite,
                "suite_index": suite_index[r.suite],
                "first": r.suite != last,
                "metric": r.metric,
                "dir": "↑" if r.higher_is_better else "↓",
                "base": _g(r.base.value, 5) if r.base else "–",
                "base_ci": _ci(r.base),
                "cand": _g(r.cand.value, 5) if r.cand else "–",
                "cand_ci": _ci(r.cand),
                "n": r.base.n if r.base else 0,
                "verdict": r.verdict,
                "delta": f"{c.delta:+.4g}" if c and not math.isnan(c.delta) else "–",
                "delta_ci": f"95% {_ci_name(c.ci_method)}CI [{_g(c.ci_low)}, {_g(c.ci_high)}]"
                if c and c.n
                else "",
                "test": f"{c.test} p={c.p_value:.3g}" if c and c.n else "–",
                "test_title": QUANTITY.get(c.test, "") if c and c.n else "",
                "mde": _mde(c),
                "wlt": f"{c.wins} / {c.losses} / {c.ties}" if c else "–",
                "errors": f"{r.base_errors} / {r.cand_errors}"
                if r.comparison or r.cand
                else str(r.base_errors),
                "checks": r.checks,
            }
        )
        last = r.suite
    return out


def _mde(c: Any) -> str:
    """The smallest delta this suite could detect (80% power, alpha 0.05), beside each delta."""
    from harness.gate.power import for_paired

    pw = for_paired(c, None, 0.05) if c is not None else None
    return "" if pw is None else f"MDE {pw.mde:.3g} (80% power)"


def _clean(data: ReportData) -> list[dict[str, Any]]:
    out = []
    for board in data.clean:
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


def _gate(data: ReportData) -> dict[str, Any] | None:
    g = data.gate
    if g is None:
        return None
    checks: list[dict[str, Any]] = [
        {
            "passed": c.passed,
            "suite": c.suite,
            "metric": c.metric,
            "check": c.check,
            "threshold": f"{c.threshold:g}",
            "observed": "–" if c.check in ("max_drop", "min_delta") else f"{c.observed:.4g}",
            # one sign convention with compare and the scoreboard: candidate − baseline
            "delta": f"{c.comparison.paired.delta:+.4g}"
            if c.comparison is not None and c.check in DELTA_CHECKS
            else "–",
            "reason": c.reason,
        }
        for c in sorted(g.checks, key=lambda c: c.passed)
    ]
    n_passed = sum(c["passed"] for c in checks)
    return {
        "policy": g.policy,
        "passed": g.passed,
        "checks": checks,
        "n": len(checks),
        "n_passed": n_passed,
        "warnings": list(g.warnings),
    }  # fmt: skip  (underpowered suites, degenerate outputs)


def _score_charts(rows: list[MetricRow], two: bool) -> list[tuple[str, list[Markup]]]:
    by_suite: dict[str, list[Markup]] = {}
    for r in rows:
        bars = [("base" if two else "model", charts.BASE if two else charts.CAND, r.base)]
        if two:
            bars.append(("candidate", charts.CAND, r.cand))
        title = f"{r.metric} {'↑' if r.higher_is_better else '↓'}"
        by_suite.setdefault(r.suite, []).append(Markup(charts.score_panel(title, bars)))
    return list(by_suite.items())


def _forest(rows: list[MetricRow]) -> str:
    items = [
        {
            "label": f"{r.suite} · {r.metric}",
            "delta": r.comparison.paired.delta,
            "ci_low": r.comparison.paired.ci_low,
            "ci_high": r.comparison.paired.ci_high,
            "hib": r.higher_is_better,
            "verdict": r.verdict,
        }
        for r in rows
        if r.comparison is not None and r.comparison.paired.n
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


def _dist_charts(payload: dict[str, Any], two: bool) -> list[tuple[str, list[Markup]]]:
    out = []
    for s in payload["suites"]:
        svgs = []
        for i, m in enumerate(s["metrics"]):
            series = []
            for k, (label, colour) in enumerate(
                [("base", charts.BASE), ("candidate", charts.CAND)] if two else [("model", charts.CAND)]
            ):
                vals = [ex[7 + k][i] for ex in s["examples"] if ex[7 + k] and ex[7 + k][i] is not None]
                series.append((label, colour, vals))
            svgs.append(Markup(charts.histogram(m["name"], series, binary=m["binary"])))
        out.append((s["name"], svgs))
    return out


def _ci_name(method: str) -> str:
    """The interval's method, shown unless it is the default paired percentile bootstrap."""
    return "" if method == "bootstrap" else {"bca": "BCa ", "t": "t "}.get(method, f"{method} ")
