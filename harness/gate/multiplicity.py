"""Many rules at once: family-wise adjusted p-values and the matching CI level."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CORRECTIONS = ("none", "holm", "bonferroni")


def adjust(p_values: Sequence[float], method: str, family: int | None = None) -> list[float]:
    """Adjusted p-values, as ``statsmodels.stats.multitest.multipletests(method=...)[1]``.

    holm: the step-down max_{j <= i} (m - j + 1) p_(j), capped at 1; bonferroni: m p, capped at 1.
    `family` (>= the number of p-values): the hypotheses the gate decides in all, CI bounds
    included. Those have no p-value here, so they count as the last steps of Holm's step-down
    (the most conservative place: the p-values get multipliers m, m-1, ...), which is
    multipletests on the p-values padded with 1.0s; with CI bounds widened to alpha / m
    (`ci_confidence`) the whole family's error stays at alpha (a union bound over the two parts).
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {CORRECTIONS}")
    p = np.asarray(p_values, dtype=np.float64)
    n = len(p)
    m = max(n, family or 0)
    if method == "none" or n == 0:
        return p.tolist()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(n)) * p[order])
    out = np.empty(n)
    out[order] = np.minimum(stepped, 1.0)
    return out.tolist()


def ci_confidence(alpha: float, method: str, family: int) -> float:
    """The level of a CI that decides one of `family` hypotheses at family-wise level alpha.

    Intervals have no step-down version of Holm, so both corrections widen them the Bonferroni
    way (alpha / family): simultaneous coverage, conservative for Holm.
    """
    if method == "none" or family <= 1:
        return 1.0 - alpha
    return 1.0 - alpha / family
