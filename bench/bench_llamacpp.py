"""`llamacpp:` vs the transformers backend on the same GGUF, side by side in one process, on CPU.

Generation: the same 32 chat prompts x 32 new greedy tokens (tok/s). Perplexity: the built-in
heldout-text suite through rolling log-likelihood (scored tok/s), plus its perplexity and
bits-per-byte on both: the "did my Q4 export lose quality?" figure. The transformers side is the
same GGUF de-quantized to fp32 (what `smollm2` / `gguf:FILE` load), so the quality difference is
the quantized arithmetic alone (llama.cpp also quantizes activations to 8 bits in its dot
products), not a different checkpoint.

.venv/bin/python bench/bench_llamacpp.py [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="both backends (default: all CPUs)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = f"llamacpp:{smollm2_gguf()}" + (f"?n_threads={args.threads}" if args.threads else "")
    models = {"transformers (fp32)": HFModel(resolve_model("smollm2")), "llama.cpp (Q4_1)": None}
    ll = LlamaCppBackend(resolve_model(spec))
    models["llama.cpp (Q4_1)"] = ll
    hf = models["transformers (fp32)"]
    print(f"threads: torch {torch.get_num_threads()}, llama.cpp {ll.n_threads}; file {ll.path.name}")
    _ = hf.model, ll.llm  # load outside the timings

    chats = _prompts()
    params = GenerationParams(max_new_tokens=32)
    prompts = {name: [m.render_chat(c) for c in chats] for name, m in models.items()}
    assert prompts["transformers (fp32)"] == prompts["llama.cpp (Q4_1)"], "chat templates disagree"
    for m in models.values():  # warm-up: first-call allocations and thread pools
        list(m.generate(prompts["transformers (fp32)"][:1], params, 1))
        list(m.rolling_loglikelihood(["A short warm-up text."], 256, 256, 8))

    texts = _texts()
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    gen_rows, ppl_rows, outputs, tokens, quality = [], [], {}, {}, {}
    for name, m in models.items():
        batch = 8 if m is hf else 1  # transformers' best batch here; llama.cpp decodes one sequence
        t0 = time.perf_counter()
        outs = {i: g for b in m.generate(prompts[name], params, batch) for i, g in b}
        secs = time.perf_counter() - t0
        outputs[name] = outs
        tokens[name] = sum(g.output_tokens for g in outs.values())
        gen_rows.append((f"{name} generate", secs))

        t0 = time.perf_counter()
        res = {i: r for b in m.rolling_loglikelihood(texts, 256, 256, 8) for i, r in b}
        secs = time.perf_counter() - t0
        nll = sum(r.nll for r in res.values())
        n_tok = sum(r.n_tokens for r in res.values())
        ppl_rows.append((f"{name} heldout-text", secs))
        quality[name] = (math.exp(nll / n_tok), nll / n_bytes / math.log(2), n_tok)

    report("generation: 32 chat prompts x 32 new tokens (greedy)", gen_rows, gen_rows[0][0])
    for (name, secs), n in zip(gen_rows, tokens.values()):
        print(f"  {name:<34} {n / secs:8.1f} generated tok/s ({n} tokens)")
    same = sum(
        outputs["transformers (fp32)"][i].text == outputs["llama.cpp (Q4_1)"][i].text for i in range(32)
    )
    print(f"  identical greedy outputs: {same}/32")
    report(f"perplexity: heldout-text ({len(texts)} paragraphs, windows of 256)", ppl_rows, ppl_rows[0][0])
    for (name, secs), (_, _, n_tok) in zip(ppl_rows, quality.values()):
        print(f"  {name:<34} {n_tok / secs:8.1f} scored tok/s ({n_tok} tokens)")
    print("\n== quality on heldout-text (same GGUF: de-quantized fp32 vs the Q4_1 artifact)")
    for name, (ppl, bpb, n_tok) in quality.items():
        print(f"  {name:<34} perplexity {ppl:8.4f}   bits/byte {bpb:.5f}   tokens {n_tok}")
    (p0, b0, _), (p1, b1, _) = quality.values()
    print(f"  llama.cpp - transformers: perplexity {p1 - p0:+.4f} ({(p1 / p0 - 1) * 100:+.2f}%), "
          f"bits/byte {b1 - b0:+.5f} ({(b1 / b0 - 1) * 100:+.2f}%)")  # fmt: skip
    g = dict(gen_rows)
    p = dict(ppl_rows)
    print(
        f"\nratios (transformers time / llama.cpp time): generation "
        f"{g['transformers (fp32) generate'] / g['llama.cpp (Q4_1) generate']:.2f}x, perplexity "
        f"{p['transformers (fp32) heldout-text'] / p['llama.cpp (Q4_1) heldout-text']:.2f}x"
    )


if __name__ == "__main__":
    main()
