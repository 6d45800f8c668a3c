"""Power: the smallest effect a suite can detect, and how many examples a margin needs.

For a mean delta this is the paired t-test's power (noncentral t, two-sided, as
``statsmodels.stats.power.TTestPower``) at the observed standard deviation of the paired
differences. For other aggregates (perplexity, macro-F1, corpus BLEU) it is the normal
approximation on the standard error read off the bootstrap CI, scaled by 1/sqrt(n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.stats import Paired


@dataclass(frozen=True)
class Power:
    mde: float
    """Minimum detectable effect, in metric units, at this n, alpha and power."""
    n: int
    n_needed: int | None
    """Examples the margin would need (None: no finite n, e.g. a margin of 0 or no spread)."""
    method: str
    """t (paired t, noncentral t) or normal (bootstrap standard error)."""


def _stats():
    from scipy import stats

    return stats


def t_power(effect_size: float, nobs: float, alpha: float) -> float:
    """Two-sided one-sample (paired) t-test power, statsmodels' ttest_power formula."""
    st = _stats()
    df, nc = nobs - 1, effect_size * math.sqrt(nobs)
    crit = st.t.isf(alpha / 2, df)
    pw = float(st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc))
    return 1.0 if math.isnan(pw) else pw  # scipy's nct gives nan far in the tail, where power is 1


def t_effect_size(nobs: float, alpha: float, power: float) -> float:
    """Smallest standardised effect with the given power (what TTestPower.solve_power returns)."""
    from scipy.optimize import brentq

    return float(brentq(lambda d: t_power(d, nobs, alpha) - power, 1e-10, 50.0, xtol=1e-12))


def t_nobs(effect_size: float, alpha: float, power: float) -> float:
    """Examples needed to detect a standardised effect (continuous, as statsmodels' solve_power)."""
    from scipy.optimize import brentq

    f = lambda n: t_power(effect_size, n, alpha) - power  # noqa: E731
    if f(2.0) >= 0:
        return 2.0
    if f(1e12) < 0:
        return math.inf
    return float(brentq(f, 2.0, 1e12, xtol=1e-9))


def for_paired(p: Paired, margin: float | None, alpha: float, power: float = 0.8) -> Power | None:
    """MDE at this comparison's n and spread; examples needed for `margin` (None when unknown)."""
    if p.n < 3:
        return None
    sd = p.detail.get("sd_diff")
    if sd is not None:
        if sd == 0:
            return Power(0.0, p.n, None, "t")
        mde = t_effect_size(p.n, alpha, power) * sd
        need = None
        if margin and margin > 0:
            n_t = t_nobs(margin / sd, alpha, power)
            need = math.ceil(n_t) if math.isfinite(n_t) else None
        return Power(mde, p.n, need, "t")
    st = _stats()
    conf = p.detail.get("confidence", 0.95)
    se = (p.ci_high - p.ci_low) / (2 * st.norm.ppf(0.5 + conf / 2))
    if not math.isfinite(se):
        return None
    mde = (st.norm.isf(alpha / 2) + st.norm.ppf(power)) * se
    need = math.ceil(p.n * (mde / margin) ** 2) if margin and margin > 0 and mde > 0 else None
    return Power(mde, p.n, need, "normal")
