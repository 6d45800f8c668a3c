"""Replicas behind one `openai:` spec: 64 requests against 1 vs 2 loopback servers that each
answer after a fixed 200 ms and serve at most 4 requests at once (throughput bound by the
server, as a GPU server with a fixed batch), through the real runner into a real DuckDB file;
both times and the ratio side by side in one run (target >= 1.8x).

.venv/bin/python bench/bench_replicas.py [--n 64] [--slots 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_endpoint import make_suite, timed_run  # noqa: E402
from bench.common import report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--slots", type=int, default=4, help="requests each server serves at once")
    args = ap.parse_args()
    from tests.fake_openai import FakeOpenAI

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as a, FakeOpenAI() as b:
        suite = make_suite(Path(tmp), args.n)
        # untimed: the first run of a process pays one-off imports (metrics, the store), seconds
        (Path(tmp) / "warm").mkdir()
        timed_run(f"openai:fake@{a.base_url}", make_suite(Path(tmp) / "warm", 4), Path(tmp) / "warm.duckdb")
        times = {}
        for name, urls in (("1 server", [a.base_url]), ("2 replicas", [a.base_url, b.base_url])):
            for srv in (a, b):
                srv.reset(latency=0.2, slots=args.slots)
            spec = f"openai:fake@{','.join(urls)}?max_concurrency=8"
            dt, calls, errors = timed_run(spec, suite, Path(tmp) / f"{len(urls)}.duckdb")
            times[name] = dt
            split = f"{len(a.state.requests)} + {len(b.state.requests)}"
            print(f"{name}: {dt:.2f} s, {calls} calls, {errors} errors, requests per server {split}")
        report(
            f"openai: replicas, {args.n} requests, loopback 200 ms, {args.slots} slots per server",
            [(name, secs) for name, secs in times.items()],
            baseline="1 server",
        )
        ratio = times["1 server"] / times["2 replicas"]
        print(f"speed-up 2 replicas vs 1 server: {ratio:.2f}x (target >= 1.8x)")


if __name__ == "__main__":
    main()
