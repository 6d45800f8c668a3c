"""Several sequences through llama.cpp contexts: llama-cpp-python's low-level API.

`Engine` owns a `llama_context`, a `llama_batch`, and logits only for the rows asked for (no
`logits_all`, no n_ctx x n_vocab array). Two kinds are used by `harness.models.llamacpp`:

- one sequence, n_ctx cells: long windows and prompts, and log-likelihood requests in order, a
  prefix shared with the previous request kept in the cache and its rows reused (`rows`);
- many sequences, one KV stream each (`kv_unified=False`, `n_seq_max` = the batch): generation
  (`generate`: each prompt decoded by itself, a prefix common to the batch decoded once and
  copied to every stream, then one token per unfinished sequence per `llama_decode`, greedy or
  each with its own sampler chain, stopping as `Llama.create_completion` stops: `Completion`), and
  windows of one length several per `llama_decode` (`score_together`).

Why streams and these shapes: with this llama.cpp (0.3.36's, CPU, flash attention off), a
sequence's logits depend on more than its tokens — on where its cells sit in a shared (unified)
cache and on whether it has one query or several in a physical batch (bench/llamacpp_kv_probe.py).
The attention kernels round differently by shape (the row softmax adds its exps in float 8
cells at a time, so the cells' offset decides which share a partial sum; one query is a
dot-product loop, several a tiled GEMM), and the 8-bit re-quantization of activations before
each of 30 layers' matmuls turns such last-bit differences into ~0.03-0.2 nats per scored
token (up to ~1 nat over a whole vocabulary row): the size of the Q4_1 file's own distance
from fp32. Flash attention with fewer than 64 queries per ubatch (its per-query kernel) is
bitwise invariant to all of it, but its numbers are not today's. A stream per sequence puts its
cells where they are alone, and every sequence gets the query counts of the one-at-a-time path,
so the numbers are those of earlier versions (measured: identical logits; sums differ by float32
rounding of the log-sum-exp only).

Each scored row is reduced on the spot to its target's log-probability (the logit minus the
row's log-sum-exp, exp in float32, sum in float64) and whether it is the argmax.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_SEQ = 256  # LLAMA_MAX_SEQ in llama.cpp
MIN_SHARED = 8  # a shorter common prefix is not worth a group
ROWS = 64  # scored rows reduced at once: ROWS x n_vocab float32 scratch
KEEP_ROWS = 64  # rows of one request kept for the next one sharing its prefix


class Engine:
    """One llama.cpp context over a loaded `Llama`'s model (its weights are not copied)."""

    def __init__(
        self, llm: Any, *, n_ctx: int, n_batch: int, n_threads: int, n_seq_max: int, unified: bool = True
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._lib = llama_cpp
        p = llama_cpp.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = min(n_batch, 512)  # as Llama(): the same physical batches as before
        p.n_seq_max = n_seq_max
        p.kv_unified = unified
        p.n_threads = p.n_threads_batch = n_threads
        p.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # Llama()'s default: same numbers
        self._context = _internals.LlamaContext(model=llm._model, params=p, verbose=False)
        self.ctx = self._context.ctx
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ctx))
        self.n_batch = n_batch
        self.n_seq_max = n_seq_max
        self.n_vocab = int(llm.n_vocab())
        self.vocab = llm._model.vocab
        self._mem = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, n_seq_max)
        b = self._batch
        self._tok = np.ctypeslib.as_array(b.token, shape=(n_batch,))
        self._pos = np.ctypeslib.as_array(b.pos, shape=(n_batch,))
        self._nseq = np.ctypeslib.as_array(b.n_seq_id, shape=(n_batch,))
        self._out = np.ctypeslib.as_array(
            ctypes.cast(b.logits, ctypes.POINTER(ctypes.c_int8)), shape=(n_batch,)
        )
        self._seq = [np.ctypeslib.as_array(b.seq_id[i], shape=(n_seq_max,)) for i in range(n_batch)]
        self.cached: list[int] = []
        """Tokens of sequence 0 in the cache (a later window sharing a prefix reuses them)."""
        self._rows: dict[int, np.ndarray] = {}  # position: float32 logits, of `cached`
        self.rows_out_max = 0
        """The most logits rows one llama_decode of this context has output."""
        self.stats: dict[str, float] = {
            "decodes": 0,
            "tokens": 0,
            "seconds": 0.0,
            "steps": 0,
            "step_tokens": 0,
            "step_seconds": 0.0,
        }
        """llama_decode calls, tokens and seconds in them; generation steps after the prompts,
        their tokens and seconds (decode, pick, stop rules): for the bench."""

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        self._context.close()

    # -- primitives -----------------------------------------------------------------------
    def clear(self) -> None:
        """Every sequence out of the cache (cell metadata only: masked cells are never read)."""
        self._lib.llama_memory_clear(self._mem, False)
        self.cached = []
        self._rows = {}

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        self._lib.llama_memory_seq_rm(self._mem, seq, p0, p1)

    def decode(self, tokens: Sequence[tuple[int, int, Sequence[int], bool]]) -> np.ndarray:
        """One `llama_decode` of (token, position, sequence ids, wants logits) entries; the
        float32 logits of the flagged entries, in batch order (a view, valid until the next
        decode)."""
        n = len(tokens)
        assert 0 < n <= self.n_batch
        n_out = 0
        for i, (tok, pos, seqs, out) in enumerate(tokens):
            self._tok[i] = tok
            self._pos[i] = pos
            self._nseq[i] = len(seqs)
            self._seq[i][: len(seqs)] = seqs
            self._out[i] = out
            n_out += out
        self.rows_out_max = max(self.rows_out_max, n_out)
        self._batch.n_tokens = n
        t0 = time.perf_counter()
        rc = self._lib.llama_decode(self.ctx, self._batch)
        self.stats["seconds"] += time.perf_counter() - t0
        self.stats["decodes"] += 1
        self.stats["tokens"] += n
        if rc != 0:
            raise RuntimeError(f"llama_decode failed (status {rc}) on {n} tokens")
        if not n_out:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        ptr = self._lib.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab))

    # -- generation -----------------------------------------------------------------------
    def generate(
        self, prompts: list[list[int]], finishers: list[Completion], samplers: list[Any | None]
    ) -> None:
        """Decode `prompts` together until each finisher is done. A sampler is None (greedy:
        the first argmax, as llama.cpp's greedy sampler) or a llama.cpp sampler chain.

        Each prompt is decoded by itself (a prefix they all share once, copied to every
        sequence), so each sequence sees the batch shapes of one-at-a-time decoding; then
        one token per unfinished sequence per `llama_decode`."""
        k = len(prompts)
        assert 0 < k <= self.n_seq_max
        self.clear()
        shared = min(_common_prefix(prompts), min(len(p) for p in prompts) - 2) if k > 1 else 0
        if shared >= MIN_SHARED:
            self._feed(prompts[0][:shared], 0, 0, False)
            for s in range(1, k):
                self._lib.llama_memory_seq_cp(self._mem, 0, s, -1, -1)
        else:
            shared = 0
        nxt: dict[int, int] = {}
        for s, ids in enumerate(prompts):
            batch, rows = self._feed(ids[shared:], shared, s, True)
            nxt[s] = self._pick(rows, samplers[s], len(batch) - 1)
        pos = [len(p) for p in prompts]
        active = [s for s in range(k) if not finishers[s].push(nxt[s])]
        while active:
            t0 = time.perf_counter()
            step = [(nxt[s], pos[s], (s,), True) for s in active]
            rows = self.decode(step)
            still = []
            for r, s in enumerate(active):
                pos[s] += 1
                nxt[s] = self._pick(rows[r], samplers[s], r)
                if not finishers[s].push(nxt[s]):
                    still.append(s)
            self.stats["steps"] += 1
            self.stats["step_tokens"] += len(active)
            self.stats["step_seconds"] += time.perf_counter() - t0
            active = still
        self.clear()

    def _feed(self, tokens: list[int], start: int, seq: int, last: bool) -> tuple[list[Any], np.ndarray]:
        """`tokens` at positions start.. of one sequence in n_batch chunks; the logits of the
        last one when `last` (with the final chunk, as a batch, for a sampler)."""
        batch: list[Any] = []
        rows = np.zeros((0, self.n_vocab), dtype=np.float32)
        for lo in range(0, len(tokens), self.n_batch):
            hi = min(lo + self.n_batch, len(tokens))
            batch = [(tokens[j], start + j, (seq,), last and j == len(tokens) - 1) for j in range(lo, hi)]
            out = self.decode(batch)
            if len(out):
                rows = out[0]
        return batch, rows

    def _pick(self, row: np.ndarray, sampler: Any | None, idx: int) -> int:
        """Greedy: the row's first argmax. Sampled: the chain reads batch entry `idx`'s row."""
        if sampler is None:
            return int(row.argmax())
        return int(self._lib.llama_sampler_sample(sampler, self.ctx, idx))

    # -- scoring --------------------------------------------------------------------------
    def score_together(
        self, windows: Sequence[tuple[list[int], list[int]]]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Windows of one input length, each its own sequence, in ONE llama_decode and one
        physical batch (n x length <= n_ubatch): every sequence sees the shapes it has alone."""
        n, length = len(windows), len(windows[0][0])
        assert n <= self.n_seq_max and n * length <= min(self.n_batch, 512)
        assert all(len(inp) == length for inp, _ in windows)
        self.clear()
        batch, wants = [], []
        for s, (inp, tgt) in enumerate(windows):
            lead = length - len(tgt)
            for j, t in enumerate(inp):
                batch.append((t, j, (s,), j >= lead))
                if j >= lead:
                    wants.append(tgt[j - lead])
        rows = self.decode(batch)
        lp, top = _reduce(rows, np.asarray(wants, dtype=np.int64))
        out, k = [], 0
        for _, tgt in windows:
            out.append((lp[k : k + len(tgt)], top[k : k + len(tgt)]))
            k += len(tgt)
        self.clear()
        return out

    def score_one(self, inp: list[int], tgt: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """One window on sequence 0, as the one-at-a-time path scored it. More rows than are
        kept for a next request (a rolling window): each llama_decode's rows are reduced in
        llama.cpp's own logits buffer, none copied (the same decodes, the same numbers)."""
        first = len(inp) - len(tgt)
        targets = np.asarray(tgt, dtype=np.int64)
        keep = _common_prefix([self.cached, inp]) if self.cached else 0
        if len(tgt) <= KEEP_ROWS or keep > first:
            return _reduce(self.rows(inp, first), targets)
        self.seq_rm(0, keep, -1)
        self.cached, self._rows = inp[:keep], {}
        lps, tops = [], []
        for lo in range(keep, len(inp), self.n_batch):
            hi = min(lo + self.n_batch, len(inp))
            out = self.decode([(inp[j], j, (0,), j >= first) for j in range(lo, hi)])
            self.cached = inp[:hi]
            if len(out):
                lp, top = _reduce(out, targets[max(lo, first) - first : hi - first])
                lps.append(lp)
                tops.append(top)
        return np.concatenate(lps), np.concatenate(tops)

    def rows(self, inp: list[int], first: int) -> np.ndarray:
        """float32 logits rows first.. of `inp` on sequence 0, made as the one-at-a-time path
        made them: the cache of the prefix shared with the previous call is kept and only the
        rest is decoded, rows of that prefix made before are reused (the choices of a
        multiple-choice question share their context's rows)."""
        keep = 0
        for a, b in zip(self.cached, inp):
            if a != b:
                break
            keep += 1
        kept = {p: r for p, r in self._rows.items() if p < keep}
        start = keep
        if keep > first and any(p not in kept for p in range(first, keep)):
            start = first  # those rows were not kept: made again
        self.seq_rm(0, start, -1)
        self.cached = inp[:start]
        made = {}
        for lo in range(start, len(inp), self.n_batch):
            hi = min(lo + self.n_batch, len(inp))
            out = self.decode([(inp[j], j, (0,), j >= first) for j in range(lo, hi)])
            for k, j in enumerate(range(max(lo, first), hi)):
                made[j] = np.array(out[k])
            self.cached = inp[:hi]
        self.cached = list(inp)
        rows = [kept[p] if p < start else made[p] for p in range(first, len(inp))]
        # a few rows (log-likelihood requests) are kept for a next request sharing them
        self._rows = {**kept, **made} if len(made) <= KEEP_ROWS else {}
        return np.stack(rows) if rows else np.zeros((0, self.n_vocab), dtype=np.float32)


def _reduce(rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = [logprob_rows(rows[i : i + ROWS], targets[i : i + ROWS]) for i in range(0, len(rows), ROWS)]
    if not out:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])


def logprob_rows(rows: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log-softmax(row)[target] (float64) and whether target is the row's (first) argmax, from
    float32 logits: the max, exp in float32, the sum in float64 (no float64 row is made)."""
    peak = rows.max(axis=1)
    total = np.exp(rows - peak[:, None]).sum(axis=1, dtype=np.float64)
    picked = rows[np.arange(len(rows)), targets].astype(np.float64)
    lp = picked - (peak.astype(np.float64) + np.log(total))
    return lp, rows.argmax(axis=1) == targets


def log_softmax_rows(rows: np.ndarray) -> np.ndarray:
    """Whole float64 log-softmax rows, for callers that want every token (an echo endpoint)."""
    r = rows.astype(np.float64)
    peak = r.max(axis=1, keepdims=True)
    return r - (peak + np.log(np.exp(r - peak).sum(axis=1, keepdims=True)))


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


# -- stopping, as Llama.create_completion stops ------------------------------------------
class Completion:
    """One sequence's stop rules, exactly those of llama-cpp-python 0.3.36's
    `Llama._create_completion` (non-streaming): an end-of-generation token stops without being
    counted; stop strings are searched in the bytes detokenized so far, except while a UTF-8
    character is incomplete; `max_tokens` ends it (checked after the stop strings)."""

    def __init__(self, llm: Any, prompt: list[int], max_tokens: int, stop: Sequence[str]) -> None:
        import llama_cpp

        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._vocab = llm._model.vocab
        self._llm = llm
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.stops = [s.encode("utf-8") for s in stop]
        self.tokens: list[int] = []
        self.text = b""
        self.finish_reason = "length"
        self._multibyte_fix = 0

    def push(self, token: int) -> bool:
        """Take the next token; True when the sequence is finished."""
        if self._is_eog(self._vocab, token):
            self.text = self._llm.detokenize(self.tokens, prev_tokens=self.prompt)
            self.finish_reason = "stop"
            return True
        self.tokens.append(token)
        all_text = self._llm.detokenize(self.tokens, prev_tokens=self.prompt)
        for k, char in enumerate(all_text[-3:]):
            k = 3 - k
            for num, pattern in [(2, 192), (3, 224), (4, 240)]:
                if num > k and pattern & char == pattern:
                    self._multibyte_fix = num - k
        if self._multibyte_fix > 0:
            self._multibyte_fix -= 1
            return False
        hits = [s for s in self.stops if s in all_text]
        if hits:
            self.text = all_text[: all_text.index(hits[0])]
            self.finish_reason = "stop"
            return True
        if len(self.tokens) >= self.max_tokens:
            self.text = all_text
            self.finish_reason = "length"
            return True
        return False


def sampler_chain(n_vocab: int, temperature: float, top_p: float, seed: int) -> Any:
    """The chain `Llama._init_sampler` builds for create_completion(top_k=0, min_p=0,
    repeat_penalty=1, temperature>0, seed=seed): the same draws from the same rows."""
    from llama_cpp import _internals

    s = _internals.LlamaSampler()
    s.add_penalties(
        n_vocab=n_vocab, penalty_last_n=64, penalty_repeat=1.0, penalty_freq=0.0, penalty_present=0.0
    )
    s.add_top_k(0)
    s.add_typical(1.0, 1)
    s.add_top_p(top_p, 1)
    s.add_min_p(0.0, 1)
    s.add_temp(temperature)
    s.add_dist(seed)
    return s
