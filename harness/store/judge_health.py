"""Judge health rows (one per judge suite run): written by `judges.health`, read by the gate and
the report, which must not import `judges/`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.store.db import Store

COLUMNS = (
    "run_id", "judge", "judge_model", "n", "parse_failures", "parse_failure_rate", "consistency",
    "score_sd", "distinct_scores", "kappa", "kappa_n", "sanity", "detail",
)  # fmt: skip
DEFAULTS = {
    "max_parse_failures": 0.1,
    "min_consistency": 0.75,
    "min_distinct_scores": 2,
    "sanity_tells_apart": 1,
}
"""What `judge_health: fail` (the policy default) holds every judge suite to. `sanity_tells_apart`:
when the suite has a sanity set, the judge must rank most references above their wrong answer,
by at least SANITY_MIN_GAP of its scale."""
SANITY_MIN_GAP = 0.1
"""The smallest mean gap, reference minus wrong, as a share of the judge's score range (a pairwise
judge's separation 2·win rate − 1 ranges over 2)."""


def write_health(store: Store, row: dict[str, Any]) -> None:
    vals = [json.dumps(row.get(c)) if c in ("sanity", "detail") else row.get(c) for c in COLUMNS]
    with store.transaction():
        store.db.execute("DELETE FROM judge_health WHERE run_id = ?", [row["run_id"]])
        store.db.execute(
            f"INSERT INTO judge_health ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", vals
        )


def get_health(store: Store, run_id: str) -> dict[str, Any] | None:
    row = store.db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM judge_health WHERE run_id = ?", [run_id]
    ).fetchone()
    if row is None:
        return None
    out = dict(zip(COLUMNS, row))
    for c in ("sanity", "detail"):
        out[c] = json.loads(out[c]) if out[c] else None
    return out


def problems(h: dict[str, Any], limits: Mapping[str, float | None]) -> list[str]:
    """What is wrong with one judge run under these limits (empty: healthy)."""
    out = []
    lim = limits.get("max_parse_failures")
    if lim is not None and (h["parse_failure_rate"] or 0) > lim:
        rate = h["parse_failure_rate"]
        out.append(f"{h['parse_failures']}/{h['n']} judge calls unparseable ({rate:.0%} > {lim:.0%})")
    lim = limits.get("min_consistency")
    if lim is not None and h["consistency"] is not None and h["consistency"] < lim:
        out.append(f"position consistency {h['consistency']:.2f} < {lim:g} (verdicts flip when answers swap)")
    lim = limits.get("min_distinct_scores")
    if lim is not None and h["judge"] != "pairwise" and h["n"] - (h["parse_failures"] or 0) >= 5:
        if (h["distinct_scores"] or 0) < lim:
            out.append(f"every answer got the same score ({h['distinct_scores']} distinct; spread 0)")
    if limits.get("sanity_tells_apart") and h.get("sanity"):
        why = sanity_problem(h["judge"], h["sanity"])
        if why:
            out.append(why)
    lim = limits.get("min_kappa")
    if lim is not None:
        if h["kappa"] is None:
            out.append("no human labels to compute kappa (tunegate review import / judge agreement)")
        elif h["kappa"] < lim:
            out.append(f"kappa with human labels {h['kappa']:.2f} < {lim:g} (n={h['kappa_n']})")
    lim = limits.get("min_separation")
    if lim is not None:
        sep = (h.get("sanity") or {}).get("separation")
        if sep is None:
            out.append("no sanity set was judged (reference vs wrong answers)")
        elif sep < lim:
            out.append(f"sanity set: reference answers beat wrong ones by {sep:.2f} < {lim:g}")
    return out


def sanity_problem(judge: str, sanity: dict[str, Any]) -> str | None:
    """Why a judged sanity set shows the judge cannot tell reference from wrong answers (None: it can).

    Recomputed from the stored numbers, so rows stored before this rule are held to it too."""
    n = (sanity.get("n") or 0) - (sanity.get("errors") or 0)
    sep = sanity.get("separation")
    if sep is None or n <= 0:
        return (
            f"sanity set: no verdict on any of its {sanity.get('n') or 0} items (reference vs wrong answers)"
        )
    if judge == "pairwise":
        rate = sanity.get("reference_win_rate")
        majority, scale = rate is not None and rate > 0.5, 2.0
        what = f"references won {rate:.0%} of the pairs" if rate is not None else "no win rate"
    else:
        higher = sanity.get("reference_higher")
        majority, scale = higher is not None and higher > n / 2, float(sanity.get("scale") or 1.0)
        what = f"{higher}/{n} references scored above their wrong answer"
    gap = SANITY_MIN_GAP * scale
    if majority and sep >= gap:
        return None
    return (
        f"sanity set: cannot tell reference from wrong answers ({what}, separation {sep:+.2f}; "
        f"needs most pairs ordered right and a gap >= {gap:g})"
    )


def health_line(h: dict[str, Any]) -> str:
    """One line for `show`: what the judge run measured, and what the default gate would say."""
    parts = [f"{h['parse_failures'] or 0}/{h['n']} unparseable"]
    if h["judge"] == "pairwise":
        if h["consistency"] is not None:
            parts.append(f"position consistency {h['consistency']:.2f}")
    else:
        sd = h["score_sd"]
        parts.append(
            f"{h['distinct_scores'] or 0} distinct scores" + (f" (sd {sd:.3g})" if sd is not None else "")
        )
    if h["kappa"] is not None:
        parts.append(f"kappa {h['kappa']:.2f} with {h['kappa_n']} human labels")
    sanity = h.get("sanity") or {}
    if sanity:
        told = (
            "cannot tell reference from wrong answers"
            if sanity_problem(h["judge"], sanity)
            else "tells reference from wrong answers"
        )
        sep = sanity.get("separation")
        parts.append(f"sanity set: {told}" + (f" (separation {sep:.2f})" if sep is not None else ""))
    issues = problems(h, DEFAULTS)
    verdict = "unhealthy: " + "; ".join(issues) if issues else "healthy by the gate's defaults"
    return f"judge health ({h['judge']}): " + ", ".join(parts) + f" — {verdict}"
