"""Inline SVG charts drawn in Python: no chart library, no script, nothing fetched.

Every text that reaches the SVG (suite and metric names, numbers) goes through `_t`, so a
name like ``<script>`` is drawn as text. Each function returns one ``<svg>`` string.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

BASE, CAND = "#7c8aa5", "#2563eb"
MORE = ("#b45309", "#15803d", "#7c3aed", "#db2777", "#0891b2", "#4b5563")
"""Candidates after the first, in a report of more than two models."""
VERDICT_COLOUR = {"better": "#15803d", "worse": "#dc2626", "ns": "#9ca3af", None: "#9ca3af"}
MUTED = 'fill="#6b7280"'
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _t(text: Any) -> str:
    return escape(str(text), quote=True)


def _f(x: float, digits: int = 4) -> str:
    """A number for a label: 4 significant digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{_t(label)}" {FONT}>' + "".join(body) + "</svg>"
    )


def _range(values: Sequence[float], zero: bool = True) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if zero:
        vals.append(0.0)
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    pad = (hi - lo) * 0.08
    return (lo if zero and lo == 0 else lo - pad), hi + pad


def score_panel(title: str, bars: list[tuple[str, str, Any]]) -> str:
    """Bars of one metric's value per model with the 95% CI as error bars.

    ``bars``: (label, colour, stats.Summary or None).
    """
    w, h, top, bottom, left = max(210, 52 + 64 * len(bars)), 150, 30, 22, 46
    present = [(lab, col, s) for lab, col, s in bars if s is not None and s.n]
    lo, hi = _range([v for _, _, s in present for v in (s.value, s.ci_low, s.ci_high)])
    y = lambda v: top + (h - top - bottom) * (hi - v) / (hi - lo)  # noqa: E731
    body = [f'<text x="{w / 2}" y="14" text-anchor="middle" font-weight="600">{_t(title)}</text>']
    for tick in (lo, (lo + hi) / 2, hi):
        body.append(
            f'<line x1="{left}" x2="{w - 6}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" {MUTED}>{_f(tick, 3)}</text>'
        )
    slot = (w - left - 6) / max(len(bars), 1)
    for i, (label, colour, s) in enumerate(bars):
        cx = left + slot * (i + 0.5)
        body.append(f'<text x="{cx:.1f}" y="{h - 6}" text-anchor="middle" fill="#374151">{_t(label)}</text>')
        if s is None or not s.n:
            body.append(f'<text x="{cx:.1f}" y="{h / 2}" text-anchor="middle" fill="#9ca3af">no data</text>')
            continue
        bw = min(36, slot * 0.5)
        y0, yv = y(min(max(0.0, lo), hi)), y(s.value)  # bars grow from 0 (or the nearest edge)
        body.append(
            f'<rect x="{cx - bw / 2:.1f}" y="{min(y0, yv):.1f}" width="{bw:.1f}" '
            f'height="{abs(y0 - yv):.1f}" fill="{colour}" opacity="0.85">'
            f"<title>{_t(label)}: {_f(s.value)} (95% CI {_f(s.ci_low)} – {_f(s.ci_high)}, n={s.n})</title>"
            "</rect>"
        )
        if math.isfinite(s.ci_low) and math.isfinite(s.ci_high):
            y1, y2 = y(s.ci_low), y(s.ci_high)
            body.append(
                f'<path d="M{cx:.1f},{y1:.1f}V{y2:.1f}M{cx - 6:.1f},{y1:.1f}h12M{cx - 6:.1f},{y2:.1f}h12" '
                'stroke="#111827" stroke-width="1.4" fill="none"/>'
            )
        label_y = min(yv, y(s.ci_high) if math.isfinite(s.ci_high) else yv) - 4
        body.append(
            f'<text x="{cx:.1f}" y="{max(label_y, top - 2):.1f}" text-anchor="middle" fill="#111827">'
            f"{_f(s.value)}</text>"
        )
    return _svg(w, h, body, f"{title}: scores with 95% CI")


def forest(rows: list[dict[str, Any]]) -> str:
    """Paired deltas with 95% CI, one row per suite × metric, drawn so right is always better.

    Metrics live on different scales (accuracy, perplexity), so each row has its own symmetric
    axis around 0 whose end is printed; the picture shows direction and whether the CI excludes
    0, the numbers beside it the size. ``rows``: label, delta, ci_low, ci_high, hib, verdict.
    """
    w, row_h, top, label_w, plot_w, inset = 880, 24, 30, 250, 380, 46
    h = top + row_h * len(rows) + 10
    x0 = label_w + plot_w / 2
    body = [
        f'<text x="{label_w}" y="14" {MUTED}>← worse</text>',
        f'<text x="{label_w + plot_w}" y="14" text-anchor="end" {MUTED}>better →</text>',
        f'<text x="{label_w + plot_w + 16}" y="14" {MUTED}>delta (95% CI, paired)</text>',
        f'<line x1="{x0}" x2="{x0}" y1="{top - 8}" y2="{h - 6}" stroke="#6b7280" stroke-dasharray="3 3"/>',
    ]
    for i, r in enumerate(rows):
        yc = top + row_h * i + row_h / 2
        sign = 1 if r["hib"] else -1  # plot the gain, so "better" is always to the right
        pts = [sign * r["delta"], sign * r["ci_low"], sign * r["ci_high"]]
        span = max((abs(p) for p in pts if math.isfinite(p)), default=0.0) * 1.15 or 1.0
        sx = lambda v: x0 + (plot_w / 2 - inset) * v / span  # noqa: E731,B023
        colour = VERDICT_COLOUR[r["verdict"]]
        if i % 2 == 0:
            body.append(f'<rect x="0" y="{yc - row_h / 2:.1f}" width="{w}" height="{row_h}" fill="#f9fafb"/>')
        body.append(f'<text x="{label_w - 8}" y="{yc + 4:.1f}" text-anchor="end">{_t(r["label"])}</text>')
        if all(math.isfinite(p) for p in pts):
            lo, hi = sorted(pts[1:])
            body.append(
                f'<line x1="{sx(lo):.1f}" x2="{sx(hi):.1f}" y1="{yc:.1f}" y2="{yc:.1f}" '
                f'stroke="{colour}" stroke-width="2.5"/>'
                f'<circle cx="{sx(pts[0]):.1f}" cy="{yc:.1f}" r="4.5" fill="{colour}">'
                f"<title>{_t(r['label'])}: delta {_f(r['delta'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"
                "</title></circle>"
            )
            body.append(
                f'<text x="{label_w + 2}" y="{yc + 4:.1f}" fill="#9ca3af" font-size="9">−{_f(span)}</text>'
                f'<text x="{label_w + plot_w - 2}" y="{yc + 4:.1f}" text-anchor="end" fill="#9ca3af" '
                f'font-size="9">+{_f(span)}</text>'
            )
        body.append(
            f'<text x="{label_w + plot_w + 16}" y="{yc + 4:.1f}" fill="{colour}">'
            f"{r['delta']:+.4g} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"
            f"{' ↑' if r['hib'] else ' ↓'}</text>"
        )
    return _svg(w, h, body, "forest plot of paired deltas")


def line_chart(
    title: str, series: Sequence[tuple[str, str, Sequence[tuple[float, float]]]], y_label: str
) -> str:
    """Lines over training steps; ``series``: (name, colour, [(step, value)])."""
    w, h, top, bottom, left, right = 420, 220, 26, 34, 48, 12
    pts = [p for _, _, s in series for p in s]
    xs = [p[0] for p in pts] or [0.0]
    xlo, xhi = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    ylo, yhi = _range([p[1] for p in pts], zero=False)
    sx = lambda v: left + (w - left - right) * (v - xlo) / (xhi - xlo)  # noqa: E731
    sy = lambda v: top + (h - top - bottom) * (yhi - v) / (yhi - ylo)  # noqa: E731
    body = [f'<text x="{left}" y="14" font-weight="600">{_t(title)}</text>']
    for tick in (ylo, (ylo + yhi) / 2, yhi):
        body.append(
            f'<line x1="{left}" x2="{w - right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end" {MUTED}>{_f(tick, 3)}</text>'
        )
    body.append(
        f'<text x="{left}" y="{h - 6}" {MUTED}>step {_f(xlo)}</text>'
        f'<text x="{w - right}" y="{h - 6}" text-anchor="end" {MUTED}>{_f(xhi)}</text>'
        f'<text x="{(left + w) / 2}" y="{h - 6}" text-anchor="middle" {MUTED}>{_t(y_label)}</text>'
    )
    for k, (name, colour, s) in enumerate(series):
        if not s:
            continue
        d = "M" + "L".join(f"{sx(x):.1f},{sy(v):.1f}" for x, v in s)
        body.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        if len(s) <= 60:
            body += [
                f'<circle cx="{sx(x):.1f}" cy="{sy(v):.1f}" r="2.2" fill="{colour}">'
                f"<title>{_t(name)} step {_f(x)}: {_f(v)}</title></circle>"
                for x, v in s
            ]
        lx = w - right - 110
        body.append(
            f'<rect x="{lx}" y="{top + 2 + 14 * k}" width="10" height="3" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{top + 7 + 14 * k}">{_t(name)}</text>'
        )
    return _svg(w, h, body, title)


def histogram(title: str, series: list[tuple[str, str, list[float]]], binary: bool = False) -> str:
    """Distribution of one metric's per-example scores, the models' histograms overlaid."""
    w, h, top, bottom, left = 260, 150, 24, 30, 34
    series = [(n, c, [v for v in s if math.isfinite(v)]) for n, c, s in series]  # inf/nan: no bin
    vals = [v for _, _, s in series for v in s]
    body = [f'<text x="{w / 2}" y="14" text-anchor="middle" font-weight="600">{_t(title)}</text>']
    if not vals:
        body.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" fill="#9ca3af">no scores</text>')
        return _svg(w, h, body, title)
    lo, hi = min(vals), max(vals)
    if binary or hi == lo:
        edges = [lo - 0.5, lo + 0.5] if hi == lo else [-0.5, 0.5, 1.5]
    else:
        edges = [lo + (hi - lo) * i / 20 for i in range(21)]
    nb = len(edges) - 1
    # at 1e20, lo ± 0.5 is lo again (and hi - lo may overflow): then every value is one bin
    span = edges[-1] - edges[0]
    counts = []
    for _, _, s in series:
        c = [0] * nb
        for v in s:
            i = min(int((v - edges[0]) / span * nb), nb - 1) if 0 < span < math.inf else 0
            c[max(i, 0)] += 1
        counts.append([x / max(len(s), 1) for x in c])  # shares: runs of different size compare
    top_share = max(max(c) for c in counts) or 1.0
    pw = (w - left - 8) / nb
    for k, ((name, colour, _), shares) in enumerate(zip(series, counts)):
        bw = pw / len(series)
        for i, share in enumerate(shares):
            bh = (h - top - bottom) * share / top_share
            body.append(
                f'<rect x="{left + pw * i + bw * k:.1f}" y="{h - bottom - bh:.1f}" '
                f'width="{max(bw - 1, 1):.1f}" '
                f'height="{bh:.1f}" fill="{colour}" opacity="0.85"><title>{_t(name)}: {share:.1%} in '
                f"[{_f(edges[i])}, {_f(edges[i + 1])})</title></rect>"
            )
    body.append(
        f'<line x1="{left}" x2="{w - 8}" y1="{h - bottom}" y2="{h - bottom}" stroke="#9ca3af"/>'
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" {MUTED}>{top_share:.0%}</text>'
    )
    if binary:
        body.append(
            f'<text x="{left + pw * 0.5:.1f}" y="{h - bottom + 13}" text-anchor="middle" {MUTED}>0</text>'
            f'<text x="{left + pw * 1.5:.1f}" y="{h - bottom + 13}" text-anchor="middle" {MUTED}>1</text>'
        )
    else:
        body.append(
            f'<text x="{left}" y="{h - bottom + 13}" {MUTED}>{_f(lo)}</text>'
            f'<text x="{w - 8}" y="{h - bottom + 13}" text-anchor="end" {MUTED}>{_f(hi)}</text>'
        )
    return _svg(w, h, body, f"{title}: score distribution")
