"""On a machine with CUDA: the same suites on the GPU and on the CPU, side by side.

Runs the built-in task suite finetune-qa (--limit 30) and the perplexity suite heldout-text on
the bundled SmolLM2 three ways — device=cpu (float32, the reference), device=cuda&dtype=float32
(the device alone) and device=cuda (dtype=auto: bfloat16 where supported) — and, where vLLM is
installed, through `vllm:` (its offline engine) in float32 and in vLLM's dtype=auto — with the CLI's
batch_size (default auto: the GPU search from 64, halved on out-of-memory). Prints each
placement's speed ratio against the CPU and the largest difference between per-example scores:
perplexity as a relative difference, task metrics as agreement (binary) or max |Δ|. Ratios and
differences, not asserts (bench/ convention); a placement whose fingerprint equals the CPU's, or
whose run failed, is reported as a failure (exit 1).

    .venv/bin/python bench/gpu_check.py [--limit 30] [--batch-size auto]

Without CUDA it says so and exits 0: there is nothing to check.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import bench.common  # noqa: E402,F401  (offline, quiet transformers)

HF_PLACEMENTS = ("smollm2?device=cpu", "smollm2?device=cuda&dtype=float32", "smollm2?device=cuda")
VLLM_PLACEMENTS = (  # a modest share of the GPU each: the first engine may not be freed in-process
    "vllm:smollm2?dtype=float32&gpu_memory_utilization=0.3",
    "vllm:smollm2?gpu_memory_utilization=0.3",
)
SUITES = ("finetune-qa", "heldout-text")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=30, help="examples of the task suite")
    ap.add_argument("--batch-size", default="auto")
    args = ap.parse_args()

    from harness.models.device import cuda_available

    if not cuda_available():
        print("no CUDA here: nothing to check")
        return 0

    import importlib.util

    from harness.models.backend import open_backend
    from harness.models.batching import parse_batch_size
    from harness.models.resolve import resolve_model
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite

    placements = HF_PLACEMENTS
    if importlib.util.find_spec("vllm") is None:
        print("vLLM is not installed here: the vllm: placements are skipped (pip install 'tunegate[vllm]')")
    else:
        placements += VLLM_PLACEMENTS
    batch = parse_batch_size(args.batch_size)
    suites = {name: load_suite(name) for name in SUITES}
    seconds: dict[tuple[str, str], float] = {}
    scores: dict[tuple[str, str], dict[tuple[str, str], float | None]] = {}
    described: dict[str, dict] = {}
    ok = True
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "gpu_check.duckdb") as store:
        fingerprints = {}
        for spec in placements:
            backend = open_backend(resolve_model(spec))
            fingerprints[spec] = backend.resolved.fingerprint
            _ = backend.shared.llm if spec.startswith("vllm:") else backend.model  # load outside the timing
            described[spec] = backend.describe()
            for name, suite in suites.items():
                limit = args.limit if suite.kind == "task" else None
                t0 = time.perf_counter()
                out = run_suite(store, backend, suite, RunOptions(limit=limit, batch_size=batch))
                seconds[spec, name] = time.perf_counter() - t0
                if out.n_errors:
                    print(f"FAIL {spec} {name}: {out.n_errors} errors")
                    ok = False
                rows = store.db.execute(
                    "SELECT example_id, metric, value FROM scores WHERE run_id = ?", [out.run_id]
                ).fetchall()
                scores[spec, name] = {(e, m): v for e, m, v in rows}
            del backend
            _free()
        if len(set(fingerprints.values())) != len(placements):
            print("FAIL: two placements share a fingerprint (their cached outputs would mix)")
            ok = False

    ref = placements[0]
    for spec in placements:
        print(f"\n== {spec}: {described[spec]}")
        for name in SUITES:
            line = f"  {name:<13} {seconds[spec, name]:8.2f} s"
            if spec != ref:
                line += f"   speed-up vs cpu {seconds[ref, name] / seconds[spec, name]:6.2f}x"
            print(line)
            if spec != ref:
                for text in _differences(scores[ref, name], scores[spec, name]):
                    print(f"      {text}")
    return 0 if ok else 1


def _differences(a: dict, b: dict) -> list[str]:
    """Per metric: agreement for 0/1 metrics, max relative |Δ| for perplexities, else max |Δ|."""
    out = []
    for metric in sorted({m for _, m in a}):
        pairs = [(a[k], b.get(k)) for k in a if k[1] == metric]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if not pairs:
            out.append(f"{metric}: no paired values")
            continue
        if all(x in (0.0, 1.0) for x, _ in pairs) and all(y in (0.0, 1.0) for _, y in pairs):
            agree = sum(x == y for x, y in pairs)
            out.append(f"{metric}: agreement {agree}/{len(pairs)}")
        elif "perplexity" in metric or metric == "bits_per_byte":
            rel = max(abs(x - y) / abs(x) for x, y in pairs if x)
            out.append(f"{metric}: max relative diff {rel:.2e}")
        else:
            out.append(f"{metric}: max |diff| {max(abs(x - y) for x, y in pairs):.3g}")
    return out


def _free() -> None:
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
