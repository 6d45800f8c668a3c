"""`llamacpp:` against llama.cpp's own tools and the transformers backend, on the same GGUF, side
by side in one run, on CPU with the same thread count.

llama.cpp's own: `llama-bench` (prompt processing pp256/pp512, generation tg32) and
`llama-perplexity -c 512` on the heldout-text paragraphs, built once from the llama.cpp source
vendored in the llama-cpp-python sdist (scripts/build-llama-tools.sh, cached). `llamacpp:`:
the same perplexity work (rolling windows of 512 over the same text), the same 32 chat prompts x
32 new greedy tokens at batch 1 and batch 8, and heldout-text in windows of 256 (the built-in
suite). transformers: the same GGUF de-quantized to fp32 (what `smollm2` / `gguf:FILE` load),
generation at batch 8 and heldout-text: the quality difference is the quantized arithmetic alone.
Peak memory of a `llamacpp:` run is measured in a child process (ru_maxrss).

.venv/bin/python bench/bench_llamacpp.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import report  # noqa: E402
from harness.config import GenerationParams  # noqa: E402
from harness.models import resolve_model  # noqa: E402
from harness.models.gguf import smollm2_gguf  # noqa: E402
from harness.models.hf import HFModel  # noqa: E402
from harness.models.llamacpp import LlamaCppBackend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _prompts() -> list[list[dict[str, str]]]:
    data = ROOT / "suites/builtin/data/finetune_qa.jsonl"
    questions = [json.loads(line)["question"] for line in data.read_text().splitlines()][:32]
    while len(questions) < 32:
        questions += questions[: 32 - len(questions)]
    return [[{"role": "user", "content": q}] for q in questions]


def _texts() -> list[str]:
    data = ROOT / "suites/builtin/data/heldout_text.jsonl"
    return [json.loads(line)["text"] for line in data.read_text().splitlines() if line.strip()]


def _tools() -> Path:
    out = subprocess.run(
        [str(ROOT / "scripts/build-llama-tools.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def llama_bench(tools: Path, gguf: Path, threads: int) -> dict[str, float]:
    """tok/s of llama-bench's pp256, pp512 and tg32 (flash attention off, as `llamacpp:`)."""
    cmd = [str(tools / "llama-bench"), "-m", str(gguf), "-t", str(threads), "-p", "256,512", "-n", "32"]
    cmd += ["-r", "3", "-fa", "0", "-o", "json"]
    rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    out = {}
    for r in rows:
        name = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        out[name] = float(r["avg_ts"])
    return out


def llama_perplexity(tools: Path, gguf: Path, threads: int, text: str) -> tuple[float, float, int]:
    """(tokens/s, perplexity, tokens) of llama-perplexity -c 512 on `text`."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    cmd = [str(tools / "llama-perplexity"), "-m", str(gguf), "-f", f.name, "-c", "512", "-t", str(threads)]
    cmd += ["-fa", "off"]
    log = subprocess.run(cmd, check=True, capture_output=True, text=True)
    both = log.stdout + log.stderr
    ts = r"(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) I "  # the log's minutes.seconds.ms.us stamps
    start = re.search(ts + r"perplexity: calculating perplexity over (\d+) chunks, n_ctx=(\d+)", both)
    end = re.search(ts + r"Final estimate: PPL = ([\d.]+)", both)
    if not start or not end:
        raise RuntimeError("llama-perplexity output not understood:\n" + both[-2000:])

    def secs(m: re.Match[str]) -> float:
        return int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 1e3 + int(m.group(4)) / 1e6

    n = int(start.group(5)) * int(start.group(6))
    return n / (secs(end) - secs(start)), float(end.group(5)), n


def _gen(m, prompts, params, batch):
    t0 = time.perf_counter()
    outs = {i: g for b in m.generate(prompts, params, batch) for i, g in b}
    return time.perf_counter() - t0, outs


def _steps(ll: LlamaCppBackend) -> dict[str, float]:
    """Generation steps (after the prompts) of both of the backend's contexts, summed."""
    keys = ("steps", "step_tokens", "step_seconds")
    engines = [e for e in (ll._engine, ll._multi) if e is not None]
    return {k: sum(e.stats[k] for e in engines) for k in keys}


def _peak_memory(spec: str, prompts: list[str], text: str) -> int:
    """Max RSS (bytes) of a child process doing a `llamacpp:` run's work: load, generate at
    batch 8, and rolling log-likelihood in windows of 512."""
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from harness.config import GenerationParams
from harness.models import resolve_model
from harness.models.llamacpp import LlamaCppBackend
b = LlamaCppBackend(resolve_model({spec!r}))
list(b.generate({prompts!r}, GenerationParams(max_new_tokens=32), 8))
list(b.rolling_loglikelihood([{text!r}], 512, 512, 1))
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) * 1024  # VmHWM (kB): ru_maxrss would keep the forked bench's own peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2, help="every side (default: 2)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    gguf = smollm2_gguf()
    tools = _tools()
    spec = f"llamacpp:{gguf}?n_threads={args.threads}"
    hf = HFModel(resolve_model("smollm2"))
    ll = LlamaCppBackend(resolve_model(spec))
    print(f"threads: {args.threads} (torch {torch.get_num_threads()}); file {gguf.name}; tools {tools}")
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    _ = hf.model, ll.engine(), ll.multi(8, 256)  # load outside the timings

    chats = _prompts()
    params = GenerationParams(max_new_tokens=32)
    prompts = [ll.render_chat(c) for c in chats]
    assert prompts == [hf.render_chat(c) for c in chats], "chat templates disagree"
    texts = _texts()
    corpus = "\n\n".join(texts)
    for m in (hf, ll):  # warm-up: first-call allocations and thread pools
        list(m.generate(prompts[:1], params, 1))
        list(m.rolling_loglikelihood(["A short warm-up text."], 256, 256, 8))

    # llama.cpp's own tools, then ours on the same work, back to back
    own = llama_bench(tools, gguf, args.threads)
    own_ppl_tps, own_ppl, own_ppl_n = llama_perplexity(tools, gguf, args.threads, corpus)
    t0 = time.perf_counter()
    [[(_, rolled)]] = list(ll.rolling_loglikelihood([corpus], 512, 512, 1))
    ours_ppl_tps = rolled.n_tokens / (time.perf_counter() - t0)
    gen: dict[str, tuple[float, int, float]] = {}  # name: (seconds, tokens, decode-only tok/s)
    outputs = {}
    for name, m, batch in (
        ("llamacpp batch 1", ll, 1),
        ("llamacpp batch 8", ll, 8),
        ("transformers fp32 batch 8", hf, 8),
    ):
        stats = _steps(ll)
        secs, outs = _gen(m, prompts, params, batch)
        outputs[name] = outs
        n = sum(g.output_tokens for g in outs.values())
        step = {k: v - stats[k] for k, v in _steps(ll).items()}
        gen[name] = (
            secs,
            n,
            step["step_tokens"] / step["step_seconds"] if step["step_seconds"] else float("nan"),
        )
    ppl_rows, quality = [], {}
    for name, m in (("transformers (fp32)", hf), ("llama.cpp (Q4_1)", ll)):
        t0 = time.perf_counter()
        res = {i: r for b in m.rolling_loglikelihood(texts, 256, 256, 8) for i, r in b}
        ppl_rows.append((f"{name} heldout-text", time.perf_counter() - t0))
        nll, n_tok = sum(r.nll for r in res.values()), sum(r.n_tokens for r in res.values())
        quality[name] = (
            math.exp(nll / n_tok),
            nll / sum(len(t.encode()) for t in texts) / math.log(2),
            n_tok,
        )
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")

    print("\n== llama.cpp's own tools (same file, same threads, flash attention off as llamacpp:)")
    for k, v in own.items():
        print(f"  llama-bench {k:<22} {v:8.1f} tok/s")
    print(f"  llama-perplexity -c 512      {own_ppl_tps:8.1f} tok/s ({own_ppl_n} tokens, PPL {own_ppl:.4f})")
    ours_ppl = math.exp(rolled.nll / rolled.n_tokens)
    print(
        f"  llamacpp: rolling 512        {ours_ppl_tps:8.1f} tok/s "
        f"({rolled.n_tokens} tokens, all scored, PPL {ours_ppl:.4f})"
    )

    print("\n== generation: 32 chat prompts x 32 new tokens (greedy), prompts included")
    for name, (secs, n, step) in gen.items():
        extra = f", decode steps only {step:6.1f} tok/s" if name.startswith("llamacpp") else ""
        print(f"  {name:<28} {secs:7.2f} s {n / secs:8.1f} generated tok/s ({n} tokens){extra}")
    base = outputs["llamacpp batch 1"]
    for name in ("llamacpp batch 8", "transformers fp32 batch 8"):
        same = sum(outputs[name][i].text == base[i].text for i in range(32))
        print(f"  identical greedy outputs, {name} vs llamacpp batch 1: {same}/32")

    report(f"perplexity: heldout-text ({len(texts)} paragraphs, windows of 256)", ppl_rows, ppl_rows[0][0])
    for (name, secs), (_, _, n_tok) in zip(ppl_rows, quality.values()):
        print(f"  {name:<34} {n_tok / secs:8.1f} scored tok/s ({n_tok} tokens)")
    print("\n== quality on heldout-text (same GGUF: de-quantized fp32 vs the Q4_1 artifact)")
    for name, (ppl, bpb, n_tok) in quality.items():
        print(f"  {name:<34} perplexity {ppl:8.4f}   bits/byte {bpb:.5f}   tokens {n_tok}")

    peak = _peak_memory(spec, prompts, corpus)
    e = ll.engine()  # the n_ctx one; the batch contexts' streams are counted as measured
    meta = ll.metadata
    arch = meta.get("general.architecture", "llama")
    n_layer, n_head = int(meta[f"{arch}.block_count"]), int(meta[f"{arch}.attention.head_count"])
    n_kv = int(meta.get(f"{arch}.attention.head_count_kv", n_head))
    head = int(meta[f"{arch}.embedding_length"]) // n_head
    cells = e.n_ctx + (ll._multi.n_ctx if ll._multi is not None else 0)  # both contexts' caches
    kv = cells * n_layer * 2 * n_kv * head * 2  # K and V, f16
    budget = gguf.stat().st_size + kv + 200 * 2**20
    print("\n== peak memory of a llamacpp: run (child process: load, generate at batch 8, rolling 512)")
    print(f"  peak RSS {peak / 2**20:7.1f} MiB; budget = file {gguf.stat().st_size / 2**20:.1f} + KV caches "
          f"{kv / 2**20:.1f} ({cells} cells: n_ctx {e.n_ctx} + batch streams) + 200 "
          f"= {budget / 2**20:.1f} MiB")  # fmt: skip

    g = {k: n / s for k, (s, n, _) in gen.items()}
    b1, b8, t8 = g["llamacpp batch 1"], g["llamacpp batch 8"], g["transformers fp32 batch 8"]
    checks = [
        ("perplexity tok/s vs llama-perplexity", ours_ppl_tps / own_ppl_tps, 0.9),
        ("perplexity tok/s vs llama-bench pp512", ours_ppl_tps / own["pp512"], 0.9),
        ("batch-1 decode steps vs llama-bench tg32", gen["llamacpp batch 1"][2] / own["tg32"], 0.9),
        ("batch-1 end-to-end vs llama-bench tg32", b1 / own["tg32"], 0.9),
        ("batch 8 vs own batch 1 (end-to-end)", b8 / b1, 2.5),
        ("batch 8 vs transformers fp32 batch 8", b8 / t8, 1.5),
        ("peak memory / budget", peak / budget, 1.0),
    ]
    print("\n== ratios (this run) and the issue's targets")
    for name, value, target in checks:
        ok = value <= target if name.startswith("peak") else value >= target
        sign = "<=" if name.startswith("peak") else ">="
        print(f"  {name:<42} {value:6.2f}x   target {sign} {target}x   {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
