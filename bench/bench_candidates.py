"""#17 benchmarks, measured side by side in one run:

1. base + 4 adapters on one suite: one `tunegate run --adapter ×4` process (one base load; the
   candidates' generations in mixed-adapter batches, and again with `--no-mixed-batches`, one
   adapter at a time) vs 5 separate `tunegate run` processes: wall-time ratio (target ≤ 0.5×) and
   peak RSS ratio (one process vs the largest single one, and vs their sum);
2. the "did the adapter really apply" check's cost as a share of a 30-example suite run
   (target ≤ 5%).

    .venv/bin/python bench/bench_candidates.py [--limit 30] [--max-new-tokens 16]

Adapters are random LoRA updates (peft `init_lora_weights=False`, r=8, q/k/v/o): what they compute
does not matter here, only that they are real adapters that change the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import bench.common  # noqa: E402, F401  (offline, quiet)


def make_adapters(root: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.models import resolve_model

    weights = resolve_model("smollm2").weights
    out = []
    for k in range(n):
        torch.manual_seed(k)
        m = get_peft_model(
            AutoModelForCausalLM.from_pretrained(weights),
            LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False),
        )
        m.save_pretrained(root / f"adapter-{k}")
        out.append(root / f"adapter-{k}")
    return out


def run_measured(args: list[str]) -> tuple[float, float]:
    """(wall s, peak RSS MiB) of a child process, from wait4's rusage."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-m", "tunegate", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode() if p.stderr else ""
    if status:
        raise SystemExit(f"tunegate {' '.join(args)} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--adapters", type=int, default=4)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-candidates-"))
    adapters = make_adapters(tmp, a.adapters)
    builtin = ROOT / "suites" / "builtin"
    suite = tmp / "qa.yaml"
    # the built-in finetune-qa suite (30 questions), with its data path made absolute
    text = (
        (builtin / "finetune-qa.yaml")
        .read_text()
        .replace("data: data/finetune_qa.jsonl", f"data: {builtin / 'data' / 'finetune_qa.jsonl'}")
    )
    text = text.replace("max_new_tokens: 24", f"max_new_tokens: {a.max_new_tokens}")
    suite.write_text(text)
    common = ["-s", str(suite), "--limit", str(a.limit), "--no-progress", "-b", "8"]

    # 1. one process, hot-swapped adapters vs five processes
    one_db, sep_db = tmp / "one.duckdb", tmp / "sep.duckdb"
    hot_args = [
        "run",
        "-m",
        "smollm2",
        *[x for p in adapters for x in ("--adapter", str(p))],
        "--db",
        str(one_db),
        *common,
    ]
    t_hot, rss_hot = run_measured(hot_args)
    # the same process with each candidate batched alone (hot-swapped, no mixed batches)
    t_swap, rss_swap = run_measured(
        [*hot_args[: hot_args.index("--db")], "--db", str(tmp / "swap.duckdb"), "--no-mixed-batches", *common]
    )
    sep = [
        run_measured(["run", "-m", spec, "--db", str(sep_db), *common])
        for spec in ["smollm2", *[f"smollm2?adapter={p}" for p in adapters]]
    ]
    t_sep = sum(t for t, _ in sep)
    rss_max, rss_sum = max(r for _, r in sep), sum(r for _, r in sep)

    # 2. the check's cost vs a 30-example run, from the stored runs of the separate processes
    # (an adapter run alone: its check, then its own generations; in the mixed process the
    # generations happen before the runs, batched across candidates)
    import duckdb

    con = duckdb.connect(str(sep_db), read_only=True)
    rows = con.execute(
        "SELECT config, epoch(ended_at) - epoch(started_at) FROM runs ORDER BY started_at"
    ).fetchall()
    con.close()
    checks = [json.loads(c)["backend"].get("candidate", {}).get("adapter_check") for c, _ in rows]
    costs = [(c["seconds"], secs) for c, (_, secs) in zip(checks, rows) if c]
    ratio = [chk / run for chk, run in costs]

    print(
        f"\n== base + {a.adapters} adapters on one suite "
        f"({a.limit} examples, {a.max_new_tokens} new tokens max)"
    )
    print(f"  one process, mixed-adapter batches: {t_hot:8.1f} s   peak RSS {rss_hot:7.0f} MiB")
    print(f"  one process, one adapter at a time: {t_swap:8.1f} s   peak RSS {rss_swap:7.0f} MiB")
    print(
        f"  {a.adapters + 1} separate processes          : {t_sep:8.1f} s   "
        f"peak RSS max {rss_max:7.0f} MiB, sum {rss_sum:7.0f} MiB"
    )
    print("    per process: " + ", ".join(f"{t:.1f}s/{r:.0f}MiB" for t, r in sep))
    print(f"  wall-time ratio                   : {t_hot / t_sep:8.3f}x   (target <= 0.5x)")
    print(f"  without mixed batches             : {t_swap / t_sep:8.3f}x")
    print(
        f"  peak RSS ratio                    : {rss_hot / rss_max:8.3f}x of the largest single process, "
        f"{rss_hot / rss_sum:.3f}x of their sum"
    )
    print(f"\n== adapter check cost vs the adapter's {a.limit}-example run")
    for (chk, run), r in zip(costs, ratio):
        print(f"  check {chk:6.2f} s   run {run:7.1f} s   {100 * r:5.2f}%")
    print(f"  mean {100 * sum(ratio) / len(ratio):.2f}%   (target <= 5%)")
    print(f"\nload average during the bench: {os.getloadavg()}")


if __name__ == "__main__":
    main()
