"""The continuous paired comparison at 500,000 examples: the analytic t interval (ci=auto from
harness.stats.ANALYTIC_MIN_N on) against the 1,000-resample percentile bootstrap it replaces.

Target: <= 2 s (the bootstrap measured 4.4-5.1 s in bench_gate.py). Also prints how far apart
the two intervals are, as a share of the bootstrap's width.

    .venv/bin/python bench/bench_verdict.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.common  # noqa: E402,F401

N = 500_000


def main() -> None:
    from harness.stats import ScoreArrays, compare_paired

    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, N)
    c = np.clip(b + rng.normal(0.002, 0.1, N), 0, 1)
    compare_paired(ScoreArrays(b[:100]), ScoreArrays(c[:100]))  # scipy.stats import, not timed
    t0 = time.perf_counter()
    fast = compare_paired(ScoreArrays(b), ScoreArrays(c))
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    boot = compare_paired(ScoreArrays(b), ScoreArrays(c), ci="bootstrap", n_boot=1000)
    t_boot = time.perf_counter() - t0
    width = boot.ci_high - boot.ci_low
    print(f"\n== paired comparison of a continuous mean, n = {N:,}")
    name = f"ci=auto ({fast.ci_method}, test {fast.test})"
    print(f"  {name:<28} {t_fast:7.3f} s   [{fast.ci_low:.6f}, {fast.ci_high:.6f}]")
    print(f"  ci=bootstrap (1,000)         {t_boot:7.3f} s   [{boot.ci_low:.6f}, {boot.ci_high:.6f}]")
    lo, hi = abs(fast.ci_low - boot.ci_low) / width, abs(fast.ci_high - boot.ci_high) / width
    print(f"  endpoints differ by {lo:.2%} / {hi:.2%} of the bootstrap width; target <= 2 s")


if __name__ == "__main__":
    main()
