"""Does a sequence's log-probabilities depend on its neighbours in llama.cpp's KV cache?

The same prompt decoded (i) alone at cell 0, (ii) beside other sequences in one llama_decode,
(iii) at a later cache offset (another sequence decoded before it), (iv) one token per
llama_decode, each compared to (i) as the largest |Δ log-softmax| over every row and vocabulary
entry (nats), under settings: flash attention on/off, KV type f16/f32, n_ubatch (one unified
cache). llama-cpp-python's low-level API only. Measured (0.3.36, CPU): flash attention off, (ii)
0.96, (iii) 0.96 at some offsets and 0 at others, (iv) 0.80; on, with n_ubatch 512, 0 for (iii)
and (iv) but 0.96 for (ii) (its tiled kernel from 64 queries); on, with n_ubatch 32, 0 for all.

.venv/bin/python bench/llamacpp_kv_probe.py [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.models.gguf import smollm2_gguf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class Ctx:
    """One llama_context with its own settings over a shared model."""

    def __init__(self, model, *, n_ctx, n_batch, n_ubatch, n_seq, unified, fa, kv_f32, threads):
        import llama_cpp

        self.L = llama_cpp
        p = llama_cpp.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max = n_ctx, n_batch, n_ubatch, n_seq
        p.kv_unified = unified
        p.n_threads = p.n_threads_batch = threads
        p.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if fa else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        if kv_f32:
            p.type_k = p.type_v = 0  # GGML_TYPE_F32
        self.ctx = llama_cpp.llama_init_from_model(model, p)
        assert self.ctx, "context not created"
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.n_batch, self.n_seq = n_batch, n_seq
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, n_seq)

    def close(self):
        self.L.llama_batch_free(self.batch)
        self.L.llama_free(self.ctx)

    def clear(self):
        self.L.llama_memory_clear(self.mem, True)

    def decode(self, entries):
        """entries: (token, pos, seq, wants logits); returns {(seq, pos): log-softmax row}."""
        b = self.batch
        for i, (t, p, s, out) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i] = t, p, 1
            b.seq_id[i][0] = s
            b.logits[i] = out
        b.n_tokens = len(entries)
        rc = self.L.llama_decode(self.ctx, b)
        assert rc == 0, f"llama_decode: {rc}"
        rows = {}
        for i, (_, p, s, out) in enumerate(entries):
            if out:
                ptr = self.L.llama_get_logits_ith(self.ctx, i)
                r = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
                m = r.max()
                rows[(s, p)] = r - (m + np.log(np.exp(r - m).sum()))
        return rows


def seq_entries(tokens, seq, start=0):
    return [(t, start + j, seq, True) for j, t in enumerate(tokens)]


def diff(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def by_pos(rows, seq):
    return {p: r for (s, p), r in rows.items() if s == seq}


def probe(model, prompt, others, threads, **kw):
    """Largest |Δ| of each arrangement vs the prompt alone at cell 0 (one decode)."""
    n = len(prompt)
    c = Ctx(model, n_ctx=2048, n_batch=512, n_seq=8, threads=threads, **kw)
    out = {}
    try:
        c.clear()
        alone = by_pos(c.decode(seq_entries(prompt, 0)), 0)
        # (i') the same again: is one context deterministic at all?
        c.clear()
        out["again"] = diff(alone, by_pos(c.decode(seq_entries(prompt, 0)), 0))
        # (ii) beside others in ONE llama_decode (prompt on seq 3, after them in the batch)
        c.clear()
        batch = [e for k, o in enumerate(others) for e in seq_entries(o, k)]
        out["beside"] = diff(alone, by_pos(c.decode(batch + seq_entries(prompt, 3)), 3))
        # (ii') beside others, the prompt FIRST in the batch (cells 0..n-1 as alone)
        c.clear()
        out["beside_first"] = diff(alone, by_pos(c.decode(seq_entries(prompt, 3) + batch), 3))
        # (iii) at later cache offsets: one other sequence of k tokens decoded before, alone
        worst, offs = 0.0, {}
        for k in (1, 5, 16, 31, 32, 37, 64, 100):
            c.clear()
            c.decode([(t, j, 1, False) for j, t in enumerate((others[0] * 10)[:k])])
            d = diff(alone, by_pos(c.decode(seq_entries(prompt, 0)), 0))
            offs[k] = d
            worst = max(worst, d)
        out["offset"] = worst
        out["offset_by_k"] = offs
        # (iii') the other sequence removed again before (seq_rm): cells freed, prompt after them?
        c.clear()
        c.decode([(t, j, 1, False) for j, t in enumerate(others[0])])
        c.L.llama_memory_seq_rm(c.mem, 1, -1, -1)
        out["after_seq_rm"] = diff(alone, by_pos(c.decode(seq_entries(prompt, 0)), 0))
        # (iv) one token per llama_decode
        c.clear()
        one = {}
        for j, t in enumerate(prompt):
            one.update(by_pos(c.decode([(t, j, 0, True)]), 0))
        out["one_per_call"] = diff(alone, one)
        # (iv') prompt minus its last token in one decode, then the last token alone
        c.clear()
        split = by_pos(c.decode(seq_entries(prompt[:-1], 0)), 0)
        split.update(by_pos(c.decode([(prompt[-1], n - 1, 0, True)]), 0))
        out["split_last"] = diff(alone, split)
    finally:
        c.close()
    return out


def main() -> None:
    import llama_cpp

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="the default settings only")
    ap.add_argument("--only-small-ubatch", action="store_true", help="flash attention, n_ubatch 32 only")
    args = ap.parse_args()
    quiet = llama_cpp.llama_log_callback(lambda *a: None)  # kept alive: llama.cpp calls it
    llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    mp = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(smollm2_gguf()).encode(), mp)
    vocab = llama_cpp.llama_model_get_vocab(model)

    def tok(text: str) -> list[int]:
        raw = text.encode()
        buf = (llama_cpp.llama_token * (len(raw) + 8))()
        n = llama_cpp.llama_tokenize(vocab, raw, len(raw), buf, len(buf), True, True)
        return list(buf[:n])

    data = ROOT / "suites/builtin/data/heldout_text.jsonl"
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines() if line.strip()]
    prompt = tok(texts[0])[:40]
    others = [tok(t)[:n] for t, n in zip(texts[1:4], (37, 23, 51))]
    settings = [dict(unified=True, fa=False, kv_f32=False, n_ubatch=512)]
    if args.only_small_ubatch:
        settings = [dict(unified=True, fa=True, kv_f32=False, n_ubatch=32)]
    elif not args.quick:
        settings += [
            dict(unified=True, fa=True, kv_f32=False, n_ubatch=512),
            dict(unified=True, fa=False, kv_f32=True, n_ubatch=512),
            dict(unified=True, fa=True, kv_f32=True, n_ubatch=512),
            # below GGML_FA_TILE_Q (64) queries per ubatch: the per-query kernel, never the tiled one
            dict(unified=True, fa=True, kv_f32=False, n_ubatch=32),
        ]
    print(f"prompt {len(prompt)} tokens; others {[len(o) for o in others]}; threads {args.threads}")
    print("largest |Δ log-softmax| (nats) vs the prompt alone at cell 0, one llama_decode:")
    for s in settings:
        res = probe(model, prompt, others, args.threads, **s)
        offs = res.pop("offset_by_k")
        cols = "  ".join(f"{k} {v:.2e}" for k, v in res.items())
        print(f"  {s}: {cols}")
        print(f"      offset by k cells before: {', '.join(f'{k}:{v:.1e}' for k, v in offs.items())}")
    llama_cpp.llama_model_free(model)


if __name__ == "__main__":
    main()
