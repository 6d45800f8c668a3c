"""Degenerate outputs: a candidate that answers exactly as the baseline did, or outputs that only
repeat the prompt. Either makes a "no significant change" verdict mean something else than it
says, so compare and the gate say it beside the verdict, and a rule can forbid it.

Computed in SQL over the two runs' stored generations (the examples both answered), so it costs
one query per suite pair (harness.store.queries_gate.degenerate_counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.store import Store, queries_gate

MOST = 0.5
"""Above this share, compare and the gate say so even without a rule."""
ECHO_WHOLE = 16
"""An output of at least this many characters found whole in its prompt repeats the prompt."""
ECHO_HEAD = 24
"""So does a longer output whose first this-many characters are found in its prompt."""
ANSWER = 16
"""The note on identical outputs counts outputs of at least this many characters: two models that
give the same label or short answer agree, they are not degenerate (a rule counts them all)."""


@dataclass(frozen=True)
class Degenerate:
    """Over the examples both runs answered."""

    n: int
    identical: int
    """Candidate outputs equal to the baseline's (after trimming white space)."""
    n_long: int
    identical_long: int
    """The same over the examples whose baseline output has at least ANSWER characters."""
    echo_baseline: int
    echo_candidate: int
    """Outputs that repeat their prompt (or a long stretch of it) instead of answering."""

    def share(self, what: str) -> float:
        return getattr(self, what) / self.n if self.n else 0.0

    def notes(self) -> list[str]:
        """What compare and the gate say beside the verdict (most outputs degenerate)."""
        out = []
        if self.n_long > self.n / 2 and self.identical_long > self.n_long * MOST:
            out.append(
                f"{self.identical} of {self.n} candidate outputs are identical to the baseline's "
                "(the candidate answers this suite as the baseline does)"
            )
        for side in ("baseline", "candidate"):
            k = getattr(self, f"echo_{side}")
            if self.n and k / self.n > MOST:
                out.append(f"{k} of {self.n} {side} outputs repeat the prompt instead of answering")
        return out

    def record(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "identical_to_baseline": self.identical,
            "prompt_echo_baseline": self.echo_baseline,
            "prompt_echo_candidate": self.echo_candidate,
            "notes": self.notes(),
        }


def degenerate(store: Store, baseline_run: str, candidate_run: str) -> Degenerate | None:
    """Identical and prompt-echoing outputs of a pair of runs; None when neither generated text."""
    n, same, n_long, same_long, eb, ec = queries_gate.degenerate_counts(
        store, baseline_run, candidate_run, answer=ANSWER, echo_whole=ECHO_WHOLE, echo_head=ECHO_HEAD
    )
    return Degenerate(n, same, n_long, same_long, eb, ec) if n else None
