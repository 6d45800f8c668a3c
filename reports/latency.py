"""The report's latency section (issue #26): each deployment's latest load run, drawn from its
stored requests: CDFs of end-to-end latency and TTFT per deployment and level, requests/s vs the
load level for a sweep, and the per-level table. Inline SVG, as `reports.charts`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from harness.store import Store
from harness.store import load as load_store
from reports.charts import BASE, CAND, MUTED, _f, _range, _svg, _t

COLOURS = (BASE, CAND, "#b45309", "#15803d", "#7c3aed", "#dc2626")
MAX_POINTS = 400
"""Points per CDF line (a long run's CDF is thinned to its quantiles: the curve keeps its shape)."""


def latency_section(store: Store, sides: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """`sides`: (label, model_id). None when no side has a completed load run."""
    runs = []
    for label, model_id in sides:
        ids = load_store.model_load_runs(store, [model_id])
        if ids:
            runs.append((label, load_store.get_load_run(store, ids[0])))
    if not runs:
        return None
    e2e: list[tuple[str, str, list[float]]] = []
    ttft: list[tuple[str, str, list[float]]] = []
    sweep: list[tuple[str, str, list[tuple[float, float]]]] = []
    table = []
    modes = set()
    for k, (label, run) in enumerate(runs):
        colour = COLOURS[k % len(COLOURS)]
        points = []
        levels = [lv for lv in load_store.levels(store, run.load_run_id) if lv["status"] == "completed"]
        for lv in levels:
            modes.add(lv["mode"])
            name = f"{label} · {_level(lv)}"
            cols = load_store.request_columns(store, run.load_run_id, lv["level"])
            ok = [i for i, err in enumerate(cols["error"]) if err is None]
            e2e.append((name, colour, [cols["e2e_s"][i] for i in ok]))
            ttft.append((name, colour, [cols["ttft_s"][i] for i in ok if cols["ttft_s"][i] is not None]))
            points.append((float(lv["value"]), float(lv["requests_per_s"] or 0.0)))
            table.append({"side": label, "load_run_id": run.load_run_id, "model": run.model_spec,
                          "level": _level(lv), **{c: lv[c] for c in load_store.SUMMARY_COLUMNS}})  # fmt: skip
        if len(points) > 1:
            sweep.append((label, colour, sorted(points)))
    charts = [
        Markup(cdf_chart("End-to-end latency (CDF)", e2e)),
        Markup(cdf_chart("Time to first token (CDF)", ttft)),
    ]
    if sweep:
        x_label = "requests in flight" if modes == {"concurrency"} else "load level (in flight or arrivals/s)"
        charts.append(Markup(xy_chart("Throughput vs load", sweep, x_label, "requests/s")))
    return {"charts": charts, "table": table}


def _level(lv: dict[str, Any]) -> str:
    return f"concurrency {lv['value']:g}" if lv["mode"] == "concurrency" else f"rate {lv['value']:g}/s"


def _dash(k: int) -> str:
    return "" if k == 0 else f' stroke-dasharray="{2 + 2 * k},{2 + k}"'


def cdf_chart(title: str, series: Sequence[tuple[str, str, list[float]]]) -> str:
    """Empirical CDFs (seconds on x, share of requests at or below on y), one step line each;
    lines of one colour (one deployment) are told apart by their dash."""
    w, plot_h, top, bottom, left, right = 460, 220, 26, 34, 40, 12
    h = plot_h + 13 * len(series) + 6  # the legend goes under the plot, never over a curve
    values = [v for _, _, vs in series for v in vs if v is not None and math.isfinite(v)]
    lo, hi = _range(values, zero=False)
    sx = lambda v: left + (w - left - right) * (v - lo) / (hi - lo)  # noqa: E731
    sy = lambda p: top + (plot_h - top - bottom) * (1 - p)  # noqa: E731
    body = [f'<text x="{left}" y="14" font-weight="600">{_t(title)}</text>']
    for p in (0.0, 0.5, 0.95):  # 0.95: where the p95 is read off
        body.append(
            f'<line x1="{left}" x2="{w - right}" y1="{sy(p):.1f}" y2="{sy(p):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{sy(p) + 4:.1f}" text-anchor="end" {MUTED}>{p:g}</text>'
        )
    ty, mid = plot_h - 14, (lo + hi) / 2
    body.append(
        f'<text x="{left}" y="{ty}" {MUTED}>{_f(lo, 3)} s</text>'
        f'<text x="{(left + w) / 2}" y="{ty}" text-anchor="middle" {MUTED}>{_f(mid, 3)} s</text>'
        f'<text x="{w - right}" y="{ty}" text-anchor="end" {MUTED}>{_f(hi, 3)} s</text>'
    )
    per_colour: dict[str, int] = {}
    for k, (name, colour, vs) in enumerate(series):
        xs = sorted(v for v in vs if v is not None and math.isfinite(v))
        if not xs:
            continue
        n = len(xs)
        idx = (
            range(n)
            if n <= MAX_POINTS
            else [round(i * (n - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)]
        )
        d, prev = f"M{sx(xs[0]):.1f},{sy(0):.1f}", 0.0
        for i in idx:
            d += f"L{sx(xs[i]):.1f},{sy(prev):.1f}L{sx(xs[i]):.1f},{sy((i + 1) / n):.1f}"
            prev = (i + 1) / n
        dash = _dash(per_colour.get(colour, 0))
        per_colour[colour] = per_colour.get(colour, 0) + 1
        body.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}>'
                    f"<title>{_t(name)}: {n} requests</title></path>")  # fmt: skip
        ly, lx = plot_h + 13 * k - 8, left
        body.append(
            f'<line x1="{lx}" x2="{lx + 14}" y1="{ly + 6}" y2="{ly + 6}" stroke="{colour}"'
            f' stroke-width="2"{dash}/><text x="{lx + 18}" y="{ly + 10}">{_t(name)}</text>'
        )
    return _svg(w, h, body, title)


def xy_chart(title: str, series: Sequence[tuple[str, str, Sequence[tuple[float, float]]]], x_label: str,
             y_label: str) -> str:  # fmt: skip
    """Lines through (level, value) points, one per deployment."""
    w, h, top, bottom, left, right = 420, 220, 26, 34, 48, 12
    pts = [p for _, _, s in series for p in s]
    xlo, xhi = _range([p[0] for p in pts], zero=False)
    ylo, yhi = _range([p[1] for p in pts])
    sx = lambda v: left + (w - left - right) * (v - xlo) / (xhi - xlo)  # noqa: E731
    sy = lambda v: top + (h - top - bottom) * (yhi - v) / (yhi - ylo)  # noqa: E731
    body = [f'<text x="{left}" y="14" font-weight="600">{_t(title)} ({_t(y_label)})</text>']
    for tick in (ylo, (ylo + yhi) / 2, yhi):
        body.append(
            f'<line x1="{left}" x2="{w - right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end" {MUTED}>{_f(tick, 3)}</text>'
        )
    body.append(f'<text x="{(left + w) / 2}" y="{h - 6}" text-anchor="middle" {MUTED}>{_t(x_label)}</text>')
    for k, (name, colour, s) in enumerate(series):
        d = "M" + "L".join(f"{sx(x):.1f},{sy(v):.1f}" for x, v in s)
        body.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        body += [
            f'<circle cx="{sx(x):.1f}" cy="{sy(v):.1f}" r="2.6" fill="{colour}">'
            f"<title>{_t(name)} at {_f(x)}: {_f(v)} {_t(y_label)}</title></circle>"
            f'<text x="{sx(x):.1f}" y="{h - 20}" text-anchor="middle" {MUTED}>{_f(x)}</text>'
            for x, v in s
        ]
        lx = w - right - 110
        body.append(
            f'<rect x="{lx}" y="{top + 2 + 14 * k}" width="10" height="3" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{top + 7 + 14 * k}">{_t(name)}</text>'
        )
    return _svg(w, h, body, title)
