"""`llamacpp:` against llama.cpp's own tools and the transformers backend, on the same GGUF, side
by side in one run, on CPU with the same thread count.

llama.cpp's own: `llama-bench` (prompt processing pp256/pp512, generation tg32),
`llama-perplexity -c 512` on the heldout-text paragraphs, and `llama-batched-bench` (1 and 8
parallel sequences of the chat prompts' mean length + 32 generated tokens: what llama.cpp itself
gains from batching on this machine, the ceiling of the batch-8 target), built once from the
llama.cpp source vendored in the llama-cpp-python sdist (scripts/build-llama-tools.sh, cached).
`llamacpp:`: llama-perplexity's own work (its 512-token chunks, logits of the second half of
each), rolling windows of 512 over the same text (every token scored: twice the output rows),
the same 32 chat prompts x 32 new greedy tokens at batch 1 and batch 8, and heldout-text in
windows of 256 (the built-in suite). transformers: the same GGUF de-quantized to fp32 (what
`smollm2` / `gguf:FILE` load), generation at batch 8 and heldout-text: the quality difference is
the quantized arithmetic alone. Peak memory of a `llamacpp:` run is measured in a child process
(VmHWM), with its RSS after each step, beside llama-perplexity's own peak on the same text.

.venv/bin/python bench/bench_llamacpp.py [--threads 2] [--no-transformers]
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


def batched_bench(tools: Path, gguf: Path, threads: int, pp: int, fa: str) -> dict[int, dict[str, float]]:
    """llama-batched-bench at 1 and 8 parallel sequences of `pp` prompt tokens + 32 generated
    (each sequence its own prompt, decoded together; then one token per sequence per decode):
    {parallel: its jsonl row (speed_pp, speed_tg, t ...)}."""
    cmd = [str(tools / "llama-batched-bench"), "-m", str(gguf), "-t", str(threads), "-c", "4096"]
    cmd += ["-b", "2048", "-ub", "512", "-npp", str(pp), "-ntg", "32", "-npl", "1,8", "-fa", fa]
    cmd += ["--output-format", "jsonl"]
    log = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = [
        json.loads(line) for line in (log.stdout + log.stderr).splitlines() if line.startswith('{"n_kv_max"')
    ]
    if len(rows) != 2:
        raise RuntimeError("llama-batched-bench output not understood:\n" + (log.stdout + log.stderr)[-2000:])
    return {int(r["pl"]): r for r in rows}


def perplexity_chunks(ll: LlamaCppBackend, text: str) -> tuple[float, float, int]:
    """(tokens/s, perplexity, tokens) of `llamacpp:` doing llama-perplexity -c 512's work: the
    text's tokens (BOS first) in chunks of 512, each chunk's first token BOS, logits for
    positions 256..511, tokens 257..511 scored (through the backend's window scorer)."""
    ids = ll.tokenize(text, add_bos=ll.vocab._model.add_bos_token())
    bos = ll.vocab.token_bos()
    windows = []
    for c in range(len(ids) // 512):
        chunk = ids[c * 512 : (c + 1) * 512]
        if bos != -1:
            chunk = [bos] + chunk[1:]
        windows.append((chunk, chunk[257:] + [chunk[0]]))  # the last row's target: unscored
    t0 = time.perf_counter()
    scored = ll._score(windows)
    secs = time.perf_counter() - t0
    lp = [float(x) for lps, _ in scored for x in lps[:-1]]
    return len(windows) * 512 / secs, math.exp(-sum(lp) / len(lp)), len(windows) * 512


def _gen(m, prompts, params, batch):
    t0 = time.perf_counter()
    outs = {i: g for b in m.generate(prompts, params, batch) for i, g in b}
    return time.perf_counter() - t0, outs


def _steps(ll: LlamaCppBackend) -> dict[str, float]:
    """Generation steps (after the prompts) of every context of the backend so far."""
    stats = ll.engine_stats
    return {k: stats.get(k, 0.0) for k in ("steps", "step_tokens", "step_seconds")}


def _peak_memory(spec: str, prompts: list[str], text: str) -> tuple[int, int, int, list[str]]:
    """(max RSS in bytes, max RSS up to llama-perplexity's work in bytes, KV cells of the open
    context, RSS at each step) of a child process doing a `llamacpp:` run's work: load, generate
    at batch 8, llama-perplexity -c 512's chunks, rolling log-likelihood in windows of 512.
    VmHWM/VmRSS: ru_maxrss would keep the forked bench's own peak; tracemalloc sees no C memory."""
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from bench.bench_llamacpp import perplexity_chunks
from harness.config import GenerationParams
from harness.models import resolve_model
from harness.models.llamacpp import LlamaCppBackend
def mib(key):
    return int([l for l in open("/proc/self/status") if l.startswith(key)][0].split()[1]) // 1024
steps = [f"start {{mib('VmRSS')}}"]
b = LlamaCppBackend(resolve_model({spec!r}))
b.llm
steps.append(f"weights {{mib('VmRSS')}}")
list(b.generate({prompts!r}, GenerationParams(max_new_tokens=32), 8))
steps.append(f"generated at batch 8 {{mib('VmRSS')}} (peak {{mib('VmHWM')}})")
perplexity_chunks(b, {text!r})
chunks = mib("VmHWM")
steps.append(f"llama-perplexity's chunks {{mib('VmRSS')}} (peak {{chunks}})")
list(b.rolling_loglikelihood([{text!r}], 512, 512, 1))
steps.append(f"rolling 512 {{mib('VmRSS')}} (peak {{mib('VmHWM')}})")
cells = sum(e.n_ctx for e in (b._engine, b._multi) if e is not None)
print(mib("VmHWM"), chunks, cells, "; ".join(steps))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    hwm, chunks, cells, steps = out.strip().splitlines()[-1].split(" ", 3)
    return int(hwm) * 2**20, int(chunks) * 2**20, int(cells), steps.split("; ")


def llama_perplexity_peak(tools: Path, gguf: Path, threads: int, text: str) -> int:
    """Peak RSS in bytes of llama-perplexity -c 512 on `text` (a child's child: ru_maxrss of the
    only process the child waited for)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    cmd = [str(tools / "llama-perplexity"), "-m", str(gguf), "-f", f.name, "-c", "512", "-t", str(threads)]
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *cmd, "-fa", "off"], check=True, capture_output=True, text=True
    )
    return int(out.stdout.split()[-1]) * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2, help="every side (default: 2)")
    ap.add_argument("--no-transformers", action="store_true", help="llama.cpp's tools and llamacpp: only")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    gguf = smollm2_gguf()
    tools = _tools()
    spec = f"llamacpp:{gguf}?n_threads={args.threads}"
    hf = None if args.no_transformers else HFModel(resolve_model("smollm2"))
    ll = LlamaCppBackend(resolve_model(spec))
    print(f"threads: {args.threads} (torch {torch.get_num_threads()}); file {gguf.name}; tools {tools}")
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    _ = hf.model if hf else None, ll.llm  # load outside the timings

    chats = _prompts()
    params = GenerationParams(max_new_tokens=32)
    prompts = [ll.render_chat(c) for c in chats]
    assert hf is None or prompts == [hf.render_chat(c) for c in chats], "chat templates disagree"
    texts = _texts()
    corpus = "\n\n".join(texts)
    for m in [x for x in (hf, ll) if x is not None]:  # warm-up: first-call allocations and thread pools
        list(m.generate(prompts[:1], params, 1))
        list(m.rolling_loglikelihood(["A short warm-up text."], 256, 256, 8))

    # llama.cpp's own tools, then ours on the same work, back to back
    own = llama_bench(tools, gguf, args.threads)
    own_ppl_tps, own_ppl, own_ppl_n = llama_perplexity(tools, gguf, args.threads, corpus)
    chunks_tps, chunks_ppl, chunks_n = perplexity_chunks(ll, corpus)
    mean_pp = round(sum(len(ll.tokenize(p)) for p in prompts) / len(prompts))
    own_batched = {fa: batched_bench(tools, gguf, args.threads, mean_pp, fa) for fa in ("off", "on")}
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
        if m is None:
            continue
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
        if m is None:
            continue
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
    print(f"  llamacpp: the same chunks    {chunks_tps:8.1f} tok/s ({chunks_n} tokens, PPL {chunks_ppl:.4f})")
    print(
        f"  llamacpp: rolling 512        {ours_ppl_tps:8.1f} tok/s "
        f"({rolled.n_tokens} tokens, all scored: twice the output rows, PPL {ours_ppl:.4f})"
    )
    for fa, rows in own_batched.items():
        one, eight = rows[1], rows[8]
        gen1, gen8 = 32 / one["t"], 8 * 32 / eight["t"]
        print(
            f"  llama-batched-bench -fa {fa:<3}  pp {mean_pp} + tg 32: generated tok/s (prompt included) "
            f"1 seq {gen1:6.1f}, 8 seqs {gen8:6.1f} = {gen8 / gen1:.2f}x; prompt {one['speed_pp']:.0f} -> "
            f"{eight['speed_pp']:.0f} tok/s, generation {one['speed_tg']:.1f} -> "
            f"{eight['speed_tg']:.1f} tok/s"
        )

    print("\n== generation: 32 chat prompts x 32 new tokens (greedy), prompts included")
    for name, (secs, n, step) in gen.items():
        extra = f", decode steps only {step:6.1f} tok/s" if name.startswith("llamacpp") else ""
        print(f"  {name:<28} {secs:7.2f} s {n / secs:8.1f} generated tok/s ({n} tokens){extra}")
    base = outputs["llamacpp batch 1"]
    for name in [n for n in ("llamacpp batch 8", "transformers fp32 batch 8") if n in outputs]:
        same = sum(outputs[name][i].text == base[i].text for i in range(32))
        print(f"  identical greedy outputs, {name} vs llamacpp batch 1: {same}/32")

    report(f"perplexity: heldout-text ({len(texts)} paragraphs, windows of 256)", ppl_rows, ppl_rows[0][0])
    for (name, secs), (_, _, n_tok) in zip(ppl_rows, quality.values()):
        print(f"  {name:<34} {n_tok / secs:8.1f} scored tok/s ({n_tok} tokens)")
    print("\n== quality on heldout-text (same GGUF: de-quantized fp32 vs the Q4_1 artifact)")
    for name, (ppl, bpb, n_tok) in quality.items():
        print(f"  {name:<34} perplexity {ppl:8.4f}   bits/byte {bpb:.5f}   tokens {n_tok}")

    peak, peak_chunks, cells, steps = _peak_memory(spec, prompts, corpus)
    own_peak = llama_perplexity_peak(tools, gguf, args.threads, corpus)
    meta = ll.metadata
    arch = meta.get("general.architecture", "llama")
    n_layer, n_head = int(meta[f"{arch}.block_count"]), int(meta[f"{arch}.attention.head_count"])
    n_kv = int(meta.get(f"{arch}.attention.head_count_kv", n_head))
    head = int(meta[f"{arch}.embedding_length"]) // n_head
    kv = cells * n_layer * 2 * n_kv * head * 2  # K and V, f16
    budget = gguf.stat().st_size + kv + 200 * 2**20
    print("\n== peak memory of a llamacpp: run (child process: load, generate at batch 8, rolling 512)")
    print(f"  peak RSS {peak / 2**20:7.1f} MiB; budget = file {gguf.stat().st_size / 2**20:.1f} + KV caches "
          f"{kv / 2**20:.1f} ({cells} cells of its contexts) + 200 = {budget / 2**20:.1f} MiB")  # fmt: skip
    print(f"  RSS (MiB) along the way: {'; '.join(steps)}")
    own_budget = gguf.stat().st_size + kv * 512 // max(cells, 1) + 200 * 2**20  # its one 512-cell context
    print(
        f"  llama-perplexity -c 512 (llama.cpp's own, C++, no Python): peak RSS {own_peak / 2**20:.1f} MiB;"
        f" llamacpp: on its work {peak_chunks / 2**20:.1f} MiB; the same budget {own_budget / 2**20:.1f} MiB"
    )

    g = {k: n / s for k, (s, n, _) in gen.items()}
    b1, b8 = g["llamacpp batch 1"], g["llamacpp batch 8"]
    t8 = g.get("transformers fp32 batch 8", float("nan"))
    b8_own = {fa: 8 * 32 / r[8]["t"] / (32 / r[1]["t"]) for fa, r in own_batched.items()}
    checks = [  # (name, ratio, target, whether the target is a floor)
        ("llama-perplexity's work vs llama-perplexity", chunks_tps / own_ppl_tps, 0.9, True),
        ("rolling 512 (all scored) vs llama-perplexity", ours_ppl_tps / own_ppl_tps, 0.9, True),
        ("perplexity tok/s vs llama-bench pp512", ours_ppl_tps / own["pp512"], 0.9, True),
        ("batch-1 decode steps vs llama-bench tg32", gen["llamacpp batch 1"][2] / own["tg32"], 0.9, True),
        ("batch-1 end-to-end vs llama-bench tg32", b1 / own["tg32"], 0.9, True),
        ("  the same work: vs llama-batched-bench 1 seq", b1 / (32 / own_batched["off"][1]["t"]), 0.9, True),
        ("  batch 8 vs llama-batched-bench 8 seqs", b8 / (8 * 32 / own_batched["off"][8]["t"]), 0.9, True),
        ("batch 8 vs own batch 1 (end-to-end)", b8 / b1, 2.5, True),
        ("  llama-batched-bench's own 8 vs 1 (-fa off)", b8_own["off"], 2.5, True),
        ("  llama-batched-bench's own 8 vs 1 (-fa on)", b8_own["on"], 2.5, True),
        ("batch 8 vs transformers fp32 batch 8", b8 / t8, 1.5, True),
        ("peak memory / budget", peak / budget, 1.0, False),
        ("  llama-perplexity's own peak / its budget", own_peak / own_budget, 1.0, False),
        ("  llama-perplexity's work: ours / its peak", peak_chunks / own_peak, 1.0, False),
    ]
    print("\n== ratios (this run) and the issue's targets")
    for name, value, target, floor in checks:
        ok = value >= target if floor else value <= target
        sign = ">=" if floor else "<="
        print(f"  {name:<42} {value:6.2f}x   target {sign} {target}x   {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
