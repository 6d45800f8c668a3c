"""Cold run vs warm-cache re-run of the same suite (target: warm <= 5% of cold, 0 model calls).

.venv/bin/python bench/bench_cache.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import report  # noqa: E402


def cli(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "tunegate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, r.stdout


def main() -> None:
    from harness.models import resolve_model
    from harness.models.hf import HFModel
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite

    suites = [load_suite("finetune-qa"), load_suite("heldout-text")]
    model = HFModel(resolve_model("smollm2"))
    _ = model.model  # load weights outside the timing
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "b.duckdb") as store:
        t0 = time.perf_counter()
        cold = [run_suite(store, model, s, RunOptions()) for s in suites]
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = [run_suite(store, model, s, RunOptions()) for s in suites]
        t_warm = time.perf_counter() - t0
    report(
        "in-process: cold vs warm cache (finetune-qa + heldout-text)",
        [("cold", t_cold), ("warm", t_warm)],
        "cold",
        "warm <= 0.05x cold",
    )
    print(f"  model calls: cold {sum(o.model_calls for o in cold)}, warm {sum(o.model_calls for o in warm)}")

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "c.duckdb")
        args = (
            "run",
            "-m",
            "smollm2",
            "-s",
            "finetune-qa",
            "-s",
            "heldout-text",
            "--db",
            db,
            "--no-progress",
        )
        c, _ = cli(*args)
        w, out = cli(*args)
    report(
        "CLI end to end (process start, imports, model load included)",
        [("cold", c), ("warm", w)],
        "cold",
    )
    print("  warm run says: " + " | ".join(line.strip() for line in out.splitlines() if "examples" in line))


if __name__ == "__main__":
    main()
