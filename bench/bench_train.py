"""Training cost: LoRA fp32 vs QLoRA 4-bit, and tunegate's `train sft` vs the same TRL call by hand.

Targets: the 4-bit model footprint <= 40% of fp32; tunegate overhead over direct TRL <= 5%.
Each variant runs in its own process (peak RSS is per process), on the bundled SFT data,
same steps, batch, length and seed; variants are interleaved so machine drift hits both sides.

.venv/bin/python bench/bench_train.py [--steps 20] [--repeat 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import bench.common  # noqa: E402,F401  (offline, quiet environment)

CONFIG = """
name: bench-{variant}
data: {{train: finetune-sft}}
quantization: {{load_in_4bit: {qlora}}}
training: {{max_steps: {steps}, batch_size: 4, max_length: 256, learning_rate: 2.0e-4, logging_steps: 1}}
output_dir: {out}
"""


def _step_times(stamps: list[float]) -> float:
    """Median seconds per step, leaving out the first two (allocator and kernel warm-up)."""
    deltas = [b - a for a, b in zip(stamps, stamps[1:])][2:]
    return statistics.median(deltas) if deltas else float("nan")


def worker(variant: str, steps: int, tmp: Path) -> dict:
    import warnings

    import torch

    warnings.simplefilter("ignore")
    stamps: list[float] = []
    footprint: dict[str, int] = {}
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if variant in ("tunegate-lora", "tunegate-qlora"):
        import trainers.sft
        from trainers.config import load_config

        real = trainers.sft.load_trainable

        def spy(loaded):  # record the model footprint before LoRA layers are added
            tm = real(loaded)
            footprint["bytes"] = tm.model.get_memory_footprint()
            return tm

        trainers.sft.load_trainable = spy
        cfg = tmp / f"{variant}.yaml"
        qlora = "true" if variant == "tunegate-qlora" else "false"
        cfg.write_text(
            textwrap.dedent(CONFIG.format(variant=variant, qlora=qlora, steps=steps, out=tmp / variant))
        )
        trainers.sft.train_sft(
            load_config(cfg, "sft"),
            tmp / f"{variant}.duckdb",
            lambda s, n, logs: stamps.append(time.perf_counter()),
        )
    else:
        footprint["bytes"] = direct_trl(steps, tmp / variant, stamps)
    return {
        "variant": variant,
        "s_per_step": _step_times(stamps),
        "wall_s": time.perf_counter() - t0,
        "footprint_mb": footprint["bytes"] / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def direct_trl(steps: int, out: Path, stamps: list[float]) -> int:
    """The same run written straight against TRL: what a user would write without tunegate."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from harness.models import resolve_model

    weights = resolve_model("smollm2").weights
    rows = []
    for line in (ROOT / "trainers" / "data" / "finetune_sft.jsonl").read_text().splitlines():
        msgs = json.loads(line)["messages"]
        rows.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
    tok = AutoTokenizer.from_pretrained(weights)
    model = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32)
    footprint = model.get_memory_footprint()

    class Stamp(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            stamps.append(time.perf_counter())

    args = SFTConfig(
        output_dir=str(out / "ckpt"),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        max_length=256,
        logging_steps=1,
        gradient_checkpointing=False,
        bf16=False,
        seed=42,
        data_seed=42,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        completion_only_loss=True,
    )
    peft = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=peft,
        callbacks=[Stamp()],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.model.save_pretrained(str(out))
    return footprint


def run_variant(variant: str, steps: int, tmp: Path, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, __file__, "--worker", variant, "--steps", str(steps), "--tmp", str(tmp)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        sys.exit(f"{variant} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2, help="Interleaved repeats of the overhead pair.")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--worker")
    ap.add_argument("--tmp", type=Path)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.steps, a.tmp)))
        return
    print(f"{a.steps} steps, batch 4, bundled SFT data; {a.threads} thread(s); load {os.getloadavg()[0]:.2f}")
    res: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        order = ["tunegate-qlora"] + ["trl-direct-lora", "tunegate-lora"] * a.repeat
        for i, v in enumerate(order):
            res.setdefault(v, []).append(run_variant(v, a.steps, Path(tmp) / str(i), a.threads))
    keys = ("s_per_step", "wall_s", "footprint_mb", "peak_rss_mb")
    med = {v: {k: statistics.median(r[k] for r in rs) for k in keys} for v, rs in res.items()}
    print(f"\n{'variant':<18}{'s/step':>9}{'wall s':>9}{'model MB':>10}{'peak RSS MB':>13}")
    for v, m in med.items():
        print(
            f"{v:<18}{m['s_per_step']:9.3f}{m['wall_s']:9.1f}{m['footprint_mb']:10.0f}{m['peak_rss_mb']:13.0f}"
        )
    lora, qlora, direct = med["tunegate-lora"], med["tunegate-qlora"], med["trl-direct-lora"]
    print("\n== LoRA fp32 vs QLoRA 4-bit (tunegate train sft)")
    ratio = qlora["footprint_mb"] / lora["footprint_mb"]
    print(f"  model footprint  4-bit / fp32 = {ratio:.3f}   (target <= 0.40)")
    print(f"  peak RSS         4-bit / fp32 = {qlora['peak_rss_mb'] / lora['peak_rss_mb']:.3f}")
    print(f"  s/step           4-bit / fp32 = {qlora['s_per_step'] / lora['s_per_step']:.3f}")
    print("\n== tunegate train sft vs the same TRL SFTTrainer call by hand (LoRA fp32)")
    ratio = lora["s_per_step"] / direct["s_per_step"]
    print(f"  s/step           tunegate / direct = {ratio:.3f}   (target <= 1.05)")
    print(f"  end-to-end wall  tunegate / direct = {lora['wall_s'] / direct['wall_s']:.3f}")
    print(f"  per-run s/step   tunegate {[round(r['s_per_step'], 3) for r in res['tunegate-lora']]}"
          f"  direct {[round(r['s_per_step'], 3) for r in res['trl-direct-lora']]}")  # fmt: skip
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
