"""Judge health in the gate: a judge suite's judge must be parseable, consistent, not constant.

The rule keys judge_* set limits (harness.gate.checks_suite); without them every judge suite
gets the fail-closed defaults (`judge_health:` fail | warn | off in the policy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.gate.result import CheckResult
from harness.store import RunRecord, Store
from harness.store.judge_health import DEFAULTS, get_health, problems


def judge_checks(
    store: Store,
    suite: str,
    rb: RunRecord,
    rc: RunRecord,
    limits: Mapping[str, float | None],
    mode: str,
    check: str,
) -> list[CheckResult]:
    found = [
        (side, run, get_health(store, run.run_id)) for side, run in (("baseline", rb), ("candidate", rc))
    ]
    if all(h is None for _, _, h in found):
        if rb.suite_kind != "judge" or mode != "fail" or check != "judge_health":
            return []
        why = "judge suite without stored judge health (re-run it with this tunegate)"
        return [CheckResult(suite, "(judge)", check, 0, math.nan, False, why, None)]
    issues = [f"{side} judge: {p}" for side, _, h in found if h is not None for p in problems(h, limits)]
    rates = [h["parse_failure_rate"] or 0 for _, _, h in found if h is not None]
    ok = not issues
    reason = "; ".join(issues) if issues else _healthy(found)
    threshold = limits.get("max_parse_failures") or 0
    if ok or mode == "fail":
        return [CheckResult(suite, "(judge)", check, threshold, max(rates), ok, reason, None)]
    shown = f"warning only (judge_health: warn): {reason}"
    return [CheckResult(suite, "(judge)", check, threshold, max(rates), True, shown, None, warning=reason)]


def _healthy(found: list[tuple[str, RunRecord, dict[str, Any] | None]]) -> str:
    parts = []
    for side, _, h in found:
        if h is None:
            continue
        bits = [f"parse failures {h['parse_failure_rate']:.0%}"]
        if h["consistency"] is not None:
            bits.append(f"consistency {h['consistency']:.2f}")
        if h["judge"] != "pairwise" and h["score_sd"] is not None:
            bits.append(f"score sd {h['score_sd']:.3g}")
        if h["kappa"] is not None:
            bits.append(f"kappa {h['kappa']:.2f}")
        sep = (h.get("sanity") or {}).get("separation")
        if sep is not None:
            bits.append(f"sanity separation {sep:+.2f}")
        parts.append(f"{side} judge healthy: " + ", ".join(bits))
    return "; ".join(parts)


def default_judge_health(
    store: Store, suite: str, rb: RunRecord, rc: RunRecord, mode: str
) -> list[CheckResult]:
    """The fail-closed default: every judge suite's judge must be parseable, consistent, not constant."""
    limits = {k: v for k, v in DEFAULTS.items()}
    return judge_checks(store, suite, rb, rc, limits, mode, "judge_health")
