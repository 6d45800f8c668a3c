"""`openai:` backend throughput: 64 prompts against a loopback server with a fixed 200 ms latency
at concurrency 1 vs 8 (target >= 6x), then a fully cached re-run vs cold (target: 0 calls and
<= 5% of the cold time). Runs the real runner into a real DuckDB file, side by side in one run.

.venv/bin/python bench/bench_endpoint.py [--n 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import report  # noqa: E402


def make_suite(folder: Path, n: int) -> Path:
    (folder / "data.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "q": f"What is {i} + {i}?", "a": str(2 * i)}) + "\n" for i in range(n)
        )
    )
    suite = folder / "suite.yaml"
    suite.write_text(
        "name: bench-ep\nkind: task\ndata: data.jsonl\nprompt: '{{ q }}'\nreference: a\n"
        "generation: {max_new_tokens: 8}\nmetrics: [exact_match]\n"
    )
    return suite


def timed_run(spec: str, suite_path: Path, db: Path) -> tuple[float, int, int]:
    from harness.models import resolve_model
    from harness.models.backend import open_backend
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite

    suite = load_suite(suite_path)
    backend = open_backend(resolve_model(spec))
    with Store(db) as store:
        t0 = time.perf_counter()
        out = run_suite(store, backend, suite, RunOptions(batch_size=8))
        return time.perf_counter() - t0, out.model_calls, out.n_errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    from tests.fake_openai import FakeOpenAI

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as srv:
        srv.reset(latency=0.2)
        suite = make_suite(Path(tmp), args.n)
        times = {}
        for c in (1, 8):
            dt, calls, errors = timed_run(
                f"openai:fake@{srv.base_url}?max_concurrency={c}", suite, Path(tmp) / f"c{c}.duckdb"
            )
            times[c] = dt
            peak = srv.state.max_in_flight
            print(f"concurrency {c}: {dt:.2f} s, {calls} calls, {errors} errors, in flight at most {peak}")
            srv.reset(latency=0.2)
        spec8 = f"openai:fake@{srv.base_url}?max_concurrency=8"
        warm, warm_calls, _ = timed_run(spec8, suite, Path(tmp) / "c8.duckdb")
        report(
            "openai: backend, 64 prompts, loopback 200 ms",
            [
                ("concurrency 1 (cold)", times[1]),
                ("concurrency 8 (cold)", times[8]),
                (f"concurrency 8, cached re-run ({warm_calls} calls)", warm),
            ],
            baseline="concurrency 1 (cold)",
        )
        print(f"speed-up concurrency 8 vs 1: {times[1] / times[8]:.2f}x (target >= 6x)")
        print(f"cached re-run / cold: {warm / times[8]:.3f} (target <= 0.05), calls {warm_calls} (target 0)")


if __name__ == "__main__":
    main()
