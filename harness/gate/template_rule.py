"""Gate rule `template_match: required`: the candidate was evaluated with its trained chat template."""

from __future__ import annotations

from harness.gate.result import CheckResult
from harness.store import RunRecord


def template_record(run: RunRecord) -> dict | None:
    """runs.config.backend.candidate.chat_template of a run (None: not an adapter view run)."""
    cand = ((run.config or {}).get("backend") or {}).get("candidate") or {}
    return cand.get("chat_template")


def template_check(suite: str, rc: RunRecord) -> CheckResult:
    rec = template_record(rc) or {}
    match = rec.get("match")
    if match is None:
        why = "no trained chat template recorded for the candidate (nothing to compare)"
        ok = True
    elif match:
        why = f"evaluated with the trained template (sha256 {str(rec.get('sha256'))[:12]})"
        ok = True
    else:
        why = (
            f"evaluated with a different chat template ({rec.get('source')}, sha256 "
            f"{str(rec.get('sha256'))[:12]}) from the one it was trained with ({rec.get('trained_source')}, "
            f"sha256 {str(rec.get('trained_sha256'))[:12]}); re-run with ?chat_template=trained"
        )
        ok = False
    return CheckResult(suite, "(suite)", "template_match", 1.0, float(bool(match)), ok, why, None)
