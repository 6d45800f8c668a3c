"""Numbers of one load level, and of two deployments compared: numpy's percentiles (linear),
throughput over the measured window, a bootstrap CI of the p95 difference."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def percentiles(values: Any) -> dict[str, float | None]:
    """p50/p90/p95/p99 of `values` exactly as `np.percentile` (method linear); None when empty."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {f"p{q}": None for q in PERCENTILES}
    got = np.percentile(arr, PERCENTILES)
    return {f"p{q}": float(v) for q, v in zip(PERCENTILES, got)}


@dataclass(frozen=True)
class LevelSummary:
    """One level of a load run, from its stored request rows."""

    n_requests: int
    n_errors: int
    error_rate: float
    duration_s: float
    """From the first request sent to the last one finished."""
    requests_per_s: float
    """Successful requests per second of the measured window."""
    output_tokens_per_s: float
    """Output tokens of successful requests per second of the measured window."""
    e2e: dict[str, float | None]
    ttft: dict[str, float | None]
    itl: dict[str, float | None]
    e2e_mean: float | None
    ttft_mean: float | None
    max_send_lag_s: float | None
    """Open loop: the latest a request left after its scheduled arrival (the client keeping up)."""

    def record(self) -> dict[str, Any]:
        return asdict(self)


def summarize(rows: dict[str, Any]) -> LevelSummary:
    """`rows`: numpy columns sent_s, e2e_s, ttft_s, failed_after_s, output_tokens, error,
    scheduled_s and itl_s (lists) of one level, as stored."""
    n = len(rows["sent_s"])
    ok = np.array([e is None for e in rows["error"]], dtype=bool)
    e2e = np.asarray(rows["e2e_s"], dtype=object)[ok] if n else np.array([])
    ttft = np.asarray(rows["ttft_s"], dtype=object)[ok] if n else np.array([])
    sent = np.asarray(rows["sent_s"], dtype=float)
    ends = [
        s + (e if e is not None else f or 0.0)
        for s, e, f in zip(rows["sent_s"], rows["e2e_s"], rows["failed_after_s"])
    ]
    duration = float(max(ends) - sent.min()) if n else 0.0
    tokens = sum(int(t or 0) for t, good in zip(rows["output_tokens"], ok) if good)
    itl = [g for gaps, good in zip(rows["itl_s"], ok) if good and gaps is not None for g in gaps]
    lags = [s - sch for s, sch in zip(rows["sent_s"], rows["scheduled_s"]) if sch is not None]
    n_err = int(n - ok.sum())
    e2e_f = [float(v) for v in e2e if v is not None]
    ttft_f = [float(v) for v in ttft if v is not None]
    return LevelSummary(
        n_requests=n,
        n_errors=n_err,
        error_rate=n_err / n if n else 0.0,
        duration_s=duration,
        requests_per_s=float(ok.sum()) / duration if duration > 0 else 0.0,
        output_tokens_per_s=tokens / duration if duration > 0 else 0.0,
        e2e=percentiles(e2e_f),
        ttft=percentiles(ttft_f),
        itl=percentiles(itl),
        e2e_mean=float(np.mean(e2e_f)) if e2e_f else None,
        ttft_mean=float(np.mean(ttft_f)) if ttft_f else None,
        max_send_lag_s=float(max(lags)) if lags else None,
    )


@dataclass(frozen=True)
class P95Difference:
    """candidate p95 − baseline p95 of end-to-end latency, with a bootstrap CI over requests."""

    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    n_baseline: int
    n_candidate: int
    resamples: int


def p95_difference(
    baseline: Any,
    candidate: Any,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    q: float = 95,
) -> P95Difference:
    """Percentile bootstrap: each side's requests resampled with replacement (the two
    deployments served different requests at different times: not paired)."""
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(candidate, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("both sides need successful requests")
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(a.size, b.size))  # bounded memory for large runs
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        ra = np.percentile(a[rng.integers(0, a.size, (k, a.size))], q, axis=1)
        rb = np.percentile(b[rng.integers(0, b.size, (k, b.size))], q, axis=1)
        diffs[start : start + k] = rb - ra
    alpha = 1 - confidence
    lo, hi = np.percentile(diffs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    pa, pb = float(np.percentile(a, q)), float(np.percentile(b, q))
    return P95Difference(
        pa, pb, pb - pa, float(lo), float(hi), confidence, int(a.size), int(b.size), resamples
    )
