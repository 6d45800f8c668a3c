"""tunegate's `benchmark` suite vs `lm_eval.simple_evaluate` run directly, on the same tasks and
the same model object (target: tunegate <= 1.10x: storing every doc must not cost more than 10%).

Both sides include loading the tasks; tunegate's also creates the run and writes every row to a
fresh DuckDB file. Runs alternate (A, B, A, B, ...) so background load hits both alike; the
median of each is reported, and the aggregates of both sides are checked to be identical.

    .venv/bin/python bench/bench_benchmark.py [--limit N] [--repeat R] [--batch-size B] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import report  # noqa: E402

TASKS = ["mini_knowledge", "mini_arith", "mini_prose"]
SUITE = """name: bench-mini
kind: benchmark
include_path: {tasks}
tasks: [mini_knowledge, mini_arith, mini_prose]
max_length: 512
{limit}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None, help="docs per task (default: all 78)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable timings on a busy small CPU)"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from harness.models import resolve_model
    from harness.models.hf import HFModel
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite
    from suites.benchmark_run import quiet_lm_eval

    tasks_dir = ROOT / "suites" / "lm_eval_tasks"
    tmp = Path(tempfile.mkdtemp())
    suite_file = tmp / "suite.yaml"
    limit = f"limit: {args.limit}" if args.limit else ""
    suite_file.write_text(SUITE.format(tasks=tasks_dir, limit=limit))
    backend = HFModel(resolve_model("smollm2"))
    with quiet_lm_eval():
        lm = HFLM(
            pretrained=backend.model, tokenizer=backend.tokenizer, batch_size=args.batch_size, max_length=512
        )

    def direct(limit: int | None = args.limit) -> dict:
        with quiet_lm_eval():
            tm = TaskManager(include_defaults=False, include_path=str(tasks_dir))
            return lm_eval.simple_evaluate(
                model=lm, tasks=TASKS, task_manager=tm, limit=limit, log_samples=True
            )["results"]

    def ours(i: int) -> dict:
        suite = load_suite(suite_file)
        with Store(tmp / f"run{i}.duckdb") as store:
            out = run_suite(store, backend, suite, RunOptions(batch_size=args.batch_size))
            return store.get_run(out.run_id).config["lm_eval"]["results"]

    direct(limit=2)  # warm-up: first forward passes and generate() calls are slow for both
    t_direct, t_ours = [], []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        a = direct()
        t_direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = ours(i)
        t_ours.append(time.perf_counter() - t0)
        for task in TASKS:
            for key, value in a[task].items():
                if "," in key and isinstance(value, float) and key in b[task]:
                    assert abs(value - b[task][key]) <= 1e-9, (task, key, value, b[task][key])
    n_docs = len(load_suite(suite_file).examples)
    report(
        f"general-mini tasks, {n_docs} docs, batch {args.batch_size}, {args.threads} torch thread(s), "
        f"median of {args.repeat} (alternating)",
        [
            ("lm_eval.simple_evaluate", statistics.median(t_direct)),
            ("tunegate benchmark suite", statistics.median(t_ours)),
        ],
        "lm_eval.simple_evaluate",
        "tunegate <= 1.10x",
    )
    print(f"  all runs, lm-eval: {' '.join(f'{t:.2f}' for t in t_direct)} s")
    print(f"  all runs, tunegate: {' '.join(f'{t:.2f}' for t in t_ours)} s")
    print("  aggregates of both sides identical (1e-9)")


if __name__ == "__main__":
    main()
