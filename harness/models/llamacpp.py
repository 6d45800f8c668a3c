"""`llamacpp:FILE.gguf`: the GGUF itself, in-process through llama-cpp-python (what ships).

The file is evaluated with its own quantization and, unless `chat_template=` overrides it, the
chat template in its metadata, rendered the way llama-cpp-python renders it (Jinja in an
immutable sandbox, `add_generation_prompt=True`, the file's BOS/EOS token texts).

Decoding goes through llama-cpp-python's low-level API (`harness.models.llamacpp_batch`), with
logits only for the rows that are used. Generation decodes `batch_size` sequences together (one
KV stream each), each stopping as `create_completion` stops: outputs are those of one-at-a-time
decoding. Log-probabilities: row i-1 (the logits after token i-1) scores token i, reduced per
scored row to the token's logit minus the row's log-sum-exp; windows of one length go several
per `llama_decode`, requests sharing a context decode it once. They are NOT
taken from `create_completion(echo=True)`, which in llama-cpp-python 0.3.36 pairs token i with
row i (shifted by one: every prompt logprob it reports is wrong). Windows and the log-likelihood
request layout are those of the transformers backend (`harness.models.windows`, lm-eval's), so
`llamacpp:` and `gguf:`/`smollm2` on the same file differ only by the quantized arithmetic.

Spec options: n_ctx=N (default: the file's context length, capped at 8192), n_threads=N
(default: the CPUs this process may use), n_batch=N, n_gpu_layers=N|all (default: all when
llama.cpp was built with a GPU backend, else 0; untested on a GPU here), chat_template=FILE-or-TEXT.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.config import GenerationParams
from harness.errors import UserError
from harness.models.base import (
    Capabilities,
    Generated,
    LogLikelihood,
    RollingLL,
    cut_at_stop,
    prepare_local,
    render_messages_plain,
)
from harness.models.fingerprint import file_sha256
from harness.models.llamacpp_batch import MAX_SEQ, Completion, Engine, log_softmax_rows, sampler_chain
from harness.models.resolve import ResolvedModel
from harness.models.spec import ModelSpec, check_options
from harness.models.windows import rolling_windows
from harness.suite import Request

log = logging.getLogger(__name__)

_OPTIONS = {"n_ctx", "n_threads", "n_batch", "n_gpu_layers", "chat_template"}
# Options that change the numbers go into the fingerprint; threads only change the speed, and a
# chat template changes the rendered prompt, which the cache key already hashes. Layers on a GPU
# change the arithmetic: in the fingerprint when not 0 (so a CPU run's key is that of before).
_NUMERIC_OPTIONS = ("n_ctx", "n_batch")
# A 128k-context file would otherwise allocate a multi-GB KV cache for 1k-token windows.
DEFAULT_MAX_CTX = 8192
# The many-sequence context (one KV stream per sequence): streams of at least MIN_CELLS cells,
# as many as the batch asks (MIN_SEQS when scoring windows), re-created larger when asked.
MIN_SEQS, MIN_CELLS = 16, 256

Batch = list[tuple[int, Any]]


def parse_spec(raw: str, body: str, params: dict[str, str]) -> ModelSpec:
    """llamacpp:FILE.gguf[?n_ctx=N&n_threads=N&n_batch=N&chat_template=FILE]."""
    check_options(raw, params, _OPTIONS, " for llamacpp:")
    if not body:
        raise UserError(
            f"model spec '{raw}': llamacpp: needs a GGUF file (llamacpp:FILE.gguf)", field="model"
        )
    p = Path(body).expanduser()
    if not p.is_file():
        raise UserError(f"GGUF file does not exist: {p}", field="model")
    with p.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{p} is not a GGUF file (no GGUF magic bytes)", field="model")
    options: dict[str, Any] = {}
    for name, low in (("n_ctx", 16), ("n_threads", 1), ("n_batch", 1)):
        if name in params:
            value = params[name]
            if not value.isdigit() or int(value) < low:
                raise UserError(f"model spec '{raw}': {name} must be an integer >= {low}", field=name)
            options[name] = int(value)
    if "n_gpu_layers" in params:
        value = params["n_gpu_layers"]
        if value != "all" and not value.isdigit():
            raise UserError(
                f"model spec '{raw}': n_gpu_layers must be an integer >= 0 or 'all'", field="n_gpu_layers"
            )
        options["n_gpu_layers"] = -1 if value == "all" else int(value)
    if "chat_template" in params:
        options["chat_template"] = _template_text(raw, params["chat_template"])
    return ModelSpec(raw=raw, kind="llamacpp", path=str(p.resolve()), options=options)


def _template_text(raw: str, value: str) -> str:
    """A file holding the template, or the template itself; compiled once to fail early."""
    path = Path(value).expanduser()
    text = path.read_text(encoding="utf-8") if path.is_file() else value
    try:
        _environment().from_string(text)
    except Exception as e:  # jinja2.TemplateSyntaxError and friends
        raise UserError(f"model spec '{raw}': chat_template is not a valid Jinja template: {e}") from None
    return text


def resolve(spec: ModelSpec) -> ResolvedModel:
    """Fingerprint = the file's sha256 + the load options that change numbers."""
    weights = Path(spec.path)
    options = {k: spec.options[k] for k in _NUMERIC_OPTIONS if k in spec.options}
    gpu = gpu_layers(spec.options)
    if gpu:
        options["n_gpu_layers"] = gpu
    h = hashlib.sha256()
    h.update(b"llamacpp\0" + file_sha256(weights).encode())
    h.update(b"options\0" + json.dumps(options, sort_keys=True).encode())
    facts = {"file": weights.name}
    if "chat_template" in spec.options:
        facts["chat_template_sha256"] = hashlib.sha256(spec.options["chat_template"].encode()).hexdigest()
    return ResolvedModel(spec, weights, None, options, h.hexdigest(), None, device="cpu", facts=facts)


def gpu_layers(options: dict[str, Any]) -> int:
    """Layers offloaded (-1: all): the option, else all when llama.cpp has a GPU backend."""
    if "n_gpu_layers" in options:
        return int(options["n_gpu_layers"])
    return -1 if _gpu_offload() else 0


def _gpu_offload() -> bool:
    try:
        import llama_cpp
    except ImportError:  # a core-only install: the model is never loaded here
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def _environment() -> Any:
    # llama-cpp-python's Jinja2ChatFormatter environment (which mirrors transformers')
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False, **kw: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, **kw
    )
    return env


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a container's CPU set, not the host's
    except AttributeError:
        return os.cpu_count() or 1


class LlamaCppBackend:
    """A GGUF file through llama.cpp in-process. Weights load on first model call; the file's
    metadata (template, special tokens, context length) is read without them."""

    capabilities = Capabilities(
        requests=frozenset({"generate", "loglikelihood", "rolling_loglikelihood"}),
        tokenizer=True,
        local_weights=False,
        why_not={
            "local_weights": "llamacpp: runs the GGUF through llama.cpp, not transformers; "
            "use gguf:FILE for a suite that needs a transformers model"
        },
    )

    def __init__(self, resolved: ResolvedModel) -> None:
        self.resolved = resolved
        self.path = Path(resolved.weights or resolved.spec.path)
        opts = resolved.spec.options
        self.n_threads = int(opts.get("n_threads") or _cpus())
        self.n_batch = int(opts.get("n_batch") or 512)
        self.n_gpu_layers = gpu_layers(opts)
        self._llm: Any = None
        self._engine: Engine | None = None
        self._multi: Engine | None = None
        self._closed_stats: dict[str, float] = {}
        self._scoring: dict[str, Any] | None = None
        self._vocab: Any = None
        self._template: Any = None
        self.calls = {"generate": 0, "eval": 0}
        """Model invocations (generations, evals), so tests and benches can prove cache hits."""

    # -- loading --------------------------------------------------------------------------
    def _llama(self, **kwargs: Any) -> Any:
        from llama_cpp import Llama

        return Llama(str(self.path), verbose=False, **kwargs)

    @property
    def vocab(self) -> Any:
        """The tokenizer and metadata only (tens of ms): enough to render and count prompts."""
        if self._llm is not None:
            return self._llm
        if self._vocab is None:
            from llama_cpp._utils import suppress_stdout_stderr

            # a vocab-only context warns "n_ctx_seq > n_ctx_train (0)" on stderr: not news
            with suppress_stdout_stderr(disable=False):
                self._vocab = self._llama(vocab_only=True)
            atexit.register(self._vocab.close)
        return self._vocab

    @property
    def llm(self) -> Any:
        """The weights, tokenizer and metadata (`Llama`); its own context is a token one: the
        decoding context is `engine`'s."""
        if self._llm is None:
            t0 = time.perf_counter()
            self._llm = self._llama(
                n_ctx=256,
                n_batch=8,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
            )
            # closed before interpreter teardown, when Llama.__del__ would fail noisily
            atexit.register(self.close)
            if self._vocab is not None:
                self._vocab.close()
                self._vocab = None
            log.info("loaded %s with llama.cpp in %.1f s", self.path.name, time.perf_counter() - t0)
        return self._llm

    def engine(self, cells: int | None = None) -> Engine:
        """The one-sequence context: long windows and prompts, the prefix-sharing log-likelihood
        path, whole rows. Sized to the tokens asked so far (`cells`; None: n_ctx), in powers of
        two from n_batch up to n_ctx, re-created larger when asked for more: its KV cache and
        compute buffer grow with its cells (at 8192: 180 + 166 MiB; at 512: 11 + 98 MiB). The
        numbers do not depend on its size: llama.cpp attends to max(256, used cells rounded up
        to 256) cells of any cache holding them."""
        n_batch = min(self.n_batch, self.n_ctx)
        want = self.n_ctx if cells is None else max(cells, n_batch, 256)
        want = min(self.n_ctx, 1 << (want - 1).bit_length())
        have = self._engine
        if have is None or have.n_ctx < want:
            llm = self.llm
            self.close_contexts()
            self._engine = Engine(llm, n_ctx=want, n_batch=n_batch, n_threads=self.n_threads, n_seq_max=1)
        assert self._engine is not None
        return self._engine

    def one(self, cells: int, rows: int = 0) -> Engine:
        """A context for one sequence of `cells` cells whose decodes output up to `rows` logits
        rows: the many-sequence context when it is open and a stream of it holds them (stream 0
        alone gives the numbers of the one-sequence context), else `engine`. One context is open
        at a time: each reserves a compute buffer for a full physical batch of logits rows."""
        m = self._multi
        if m is not None and m.n_ctx // m.n_seq_max >= cells and self.n_batch <= m.n_batch:
            if not _outgrown(m, rows):
                return m
        if self._engine is not None and _outgrown(self._engine, rows):
            self.close_contexts()
        return self.engine(cells)

    def multi(self, n_seqs: int, cells: int, rows: int = 0) -> Engine:
        """The many-sequence context: `n_seqs` KV streams of `cells` cells each (a sequence
        sees its own stream only, so its numbers are those of one-at-a-time decoding)."""
        n_seqs, cells = max(n_seqs, 2), -(-max(cells, MIN_CELLS) // 256) * 256
        have = self._multi
        if have is not None and _outgrown(have, rows):
            self.close_contexts()
            have = None
        if have is None or have.n_seq_max < n_seqs or have.n_ctx // have.n_seq_max < cells:
            if have is not None:
                n_seqs, cells = max(n_seqs, have.n_seq_max), max(cells, have.n_ctx // have.n_seq_max)
            self.close_contexts()
            self._multi = Engine(
                self.llm, n_ctx=n_seqs * cells, n_batch=min(self.n_batch, 512), n_threads=self.n_threads,
                n_seq_max=n_seqs, unified=False,
            )  # fmt: skip
        assert self._multi is not None
        return self._multi

    def close_contexts(self) -> None:
        """The decoding contexts closed; the weights stay loaded (their counters kept)."""
        for eng in (self._engine, self._multi):
            if eng is not None:
                for k, v in eng.stats.items():
                    self._closed_stats[k] = self._closed_stats.get(k, 0) + v
                eng.close()
        self._engine = self._multi = None

    def close(self) -> None:
        self.close_contexts()
        if self._llm is not None:
            self._llm.close()

    @property
    def engine_stats(self) -> dict[str, float]:
        """llama_decode calls, tokens, seconds and generation steps of every context so far."""
        out = dict(self._closed_stats)
        for eng in (self._engine, self._multi):
            if eng is not None:
                for k, v in eng.stats.items():
                    out[k] = out.get(k, 0) + v
        return out

    @property
    def metadata(self) -> dict[str, str]:
        return self.vocab.metadata

    @property
    def n_ctx(self) -> int:
        if "n_ctx" in self.resolved.spec.options:
            return int(self.resolved.spec.options["n_ctx"])
        arch = self.metadata.get("general.architecture", "llama")
        trained = int(self.metadata.get(f"{arch}.context_length", 2048))
        return min(trained, DEFAULT_MAX_CTX)

    def preflight(self, needed: set[str], what: str) -> None:
        """Nothing to verify: log-probabilities are computed here, not reported by a server."""

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "llamacpp",
            "file": str(self.path),
            "n_ctx": self.n_ctx,
            "threads": self.n_threads,
            "n_batch": self.n_batch,
            "n_gpu_layers": self.n_gpu_layers,
            "gpu_offload": _gpu_offload(),
            "quantization": self.quantization(),
            "chat_template": "option" if "chat_template" in self.resolved.spec.options else "gguf",
            "llama_cpp_python": _version(),
        }

    def quantization(self) -> str | None:
        """The file's quantization type (Q4_K_M, Q8_0, F16 …) from `general.file_type`."""
        ftype = self.metadata.get("general.file_type")
        if ftype is None:
            return None
        try:
            from gguf import LlamaFileType

            return LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_")
        except (ImportError, ValueError):
            return f"file_type {ftype}"

    # -- tokens ---------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of `text`; special-token texts (<|im_start|>) are parsed, as transformers'
        tokenizers and llama.cpp's chat path do. BOS only when asked and the file wants one."""
        return self.vocab.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        return self.vocab.detokenize(list(tokens), special=True)

    @property
    def prefix_token(self) -> int:
        """What the first token of a scored text is predicted from: BOS, else EOS (as HF)."""
        bos = self.vocab.token_bos()
        return bos if bos != -1 else self.vocab.token_eos()

    def scoring(self) -> dict[str, Any]:
        """How texts are scored (the keys of `OpenAIBackend.scoring`): every token, the first one
        predicted from `prefix_token`; the tokenizer by the hash of the GGUF's token list (as
        `harness.models.prefix.gguf_facts` reads it from the file), from the loaded vocabulary."""
        if self._scoring is None:
            import llama_cpp

            from harness.models.prefix import Scoring, vocab_hash

            vocab = self.vocab._model.vocab
            n = llama_cpp.llama_vocab_n_tokens(vocab)
            texts = [
                llama_cpp.llama_vocab_get_text(vocab, i).decode("utf-8", errors="replace") for i in range(n)
            ]
            prefix = self.vocab._model.token_get_text(self.prefix_token)
            self._scoring = Scoring(vocab_hash(texts), prefix, True, "gguf").record()
        return dict(self._scoring)

    def token_logprobs(self, tokens: Sequence[int], first_row: int = 0) -> Any:
        """Whole log-softmax rows `first_row:` (float64 numpy, one row per token × vocab): row i
        is the distribution of the token after `tokens[i]`; for callers that want every token
        (an echo endpoint). The cache of a prefix shared with the previous call is reused."""
        import numpy as np

        tokens = list(tokens)
        if not tokens:
            return np.zeros((0, 0))
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens do not fit n_ctx={self.n_ctx}")
        self.calls["eval"] += 1
        rows = min(len(tokens) - first_row, self.n_batch)
        return log_softmax_rows(self.one(len(tokens), rows).rows(tokens, first_row))

    def text_logprobs(self, text: str) -> list[float | None]:
        """Per-token log-probabilities of `text` as a completions endpoint with echo reports
        them: the first token has no context (None); token i is scored by row i-1."""
        ids = self.tokenize(text, add_bos=self.vocab._model.add_bos_token())
        if not ids:
            return []
        lp = self.token_logprobs(ids)
        return [None] + [float(lp[i - 1, ids[i]]) for i in range(1, len(ids))]

    # -- prompts --------------------------------------------------------------------------
    def chat_template(self) -> str | None:
        return self.resolved.spec.options.get("chat_template") or self.metadata.get("tokenizer.chat_template")

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The file's own chat template (or the override), ready for the assistant's turn."""
        source = self.chat_template()
        if not source:
            return render_messages_plain(messages)
        if self._template is None:
            self._template = _environment().from_string(source)
        vocab = self.vocab

        def token_text(tid: int) -> str:
            return vocab._model.token_get_text(tid) if tid != -1 else ""

        def raise_exception(message: str) -> None:
            raise UserError(f"{self.resolved.spec.raw}: the chat template refused the messages: {message}")

        return self._template.render(
            messages=messages,
            bos_token=token_text(vocab.token_bos()),
            eos_token=token_text(vocab.token_eos()),
            add_generation_prompt=True,
            raise_exception=raise_exception,
            strftime_now=lambda fmt: time.strftime(fmt),
        )

    def prepare(self, request: Request) -> Request:
        return prepare_local(request, self.render_chat)

    def _prompt_ids(self, request: Request | str) -> list[int]:
        if isinstance(request, str):
            text, chat = request, False
        else:
            chat = request.messages is not None
            text = self.prepare(request).prompt or ""
        # llama-cpp-python: a rendered template carries its own BOS; a raw prompt gets the
        # file's add_bos_token setting.
        return self.tokenize(text, add_bos=not chat and self.vocab._model.add_bos_token())

    # -- generation -----------------------------------------------------------------------
    def generate(
        self,
        requests: Sequence[Request | str],
        params: GenerationParams,
        batch_size: int,
        seed: int | None = None,
    ) -> Iterator[list[tuple[int, Generated]]]:
        """Greedy (temperature 0) or sampled continuations, `batch_size` sequences decoded
        together in one llama.cpp context and yielded together for the runner to store (longest
        prompts first). Each sequence stops as `create_completion` stops and samples from its own
        chain seeded from `seed` in a fixed order, so a run is reproducible and a greedy output
        does not depend on the batch it was decoded in."""
        if not requests:
            return
        ids = [self._prompt_ids(r) for r in requests]
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
        seeds = random.Random(seed)
        batch_size = max(1, min(int(batch_size), MAX_SEQ))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            yield self._generate_batch([(i, ids[i], seeds.getrandbits(31)) for i in chunk], params)

    def _max_tokens(self, n_prompt: int, params: GenerationParams) -> int:
        m = params.max_new_tokens  # as create_completion: none or <= 0 means up to n_ctx
        if m is None or m <= 0 or m + n_prompt >= self.n_ctx:
            m = self.n_ctx - n_prompt
        return m

    def _generate_batch(
        self, chunk: list[tuple[int, list[int], int]], params: GenerationParams
    ) -> list[tuple[int, Generated]]:
        t0 = time.perf_counter()
        out: dict[int, Generated] = {}
        groups: list[list[tuple[int, list[int], int]]] = [[]]
        for item in chunk:
            i, ids, _ = item
            if len(ids) >= self.n_ctx:
                err = f"ValueError: Requested tokens ({len(ids)}) exceed context window of {self.n_ctx}"
                out[i] = Generated(None, len(ids), 0, 0.0, err)
                continue
            groups[-1].append(item)  # +4 cells below: a UTF-8 character finishing past max_tokens
        sampled = params.temperature > 0
        for group in groups:
            if not group:
                continue
            # several sequences: one KV stream each (cells for the longest); one alone: n_ctx
            need = max(len(ids) + self._max_tokens(len(ids), params) + 4 for _, ids, _ in group)
            fits = len(group) > 1 and len(group) * need <= max(self.n_ctx, MIN_SEQS * MIN_CELLS)
            parts = [group] if fits or len(group) == 1 else [[g] for g in group]
            for part in parts:
                eng = self.multi(len(part), need) if len(part) > 1 else self.one(need)
                fins = [
                    Completion(self.llm, ids, self._max_tokens(len(ids), params), params.stop)
                    for _, ids, _ in part
                ]
                chains = [
                    sampler_chain(eng.n_vocab, params.temperature, params.top_p, s) if sampled else None
                    for *_, s in part
                ]
                try:
                    self.calls["generate"] += len(part)
                    eng.generate(
                        [ids for _, ids, _ in part], fins, [c.sampler if c else None for c in chains]
                    )
                except (RuntimeError, ValueError) as e:
                    for i, ids, _ in part:
                        out[i] = Generated(None, len(ids), 0, 0.0, f"{type(e).__name__}: {e}")
                    continue
                finally:
                    for c in chains:
                        if c is not None:
                            c.close()
                for (i, ids, _), fin in zip(part, fins):
                    text = cut_at_stop(fin.text.decode("utf-8", errors="ignore"), params.stop)
                    out[i] = Generated(
                        text, len(ids), len(fin.tokens), 0.0, usage={"finish_reason": fin.finish_reason}
                    )
        dt = (time.perf_counter() - t0) / len(chunk)
        return [(i, replace(out[i], latency_s=dt)) for i, _, _ in chunk]

    # -- log-likelihood -------------------------------------------------------------------
    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], batch_size: int
    ) -> Iterator[list[tuple[int, LogLikelihood]]]:
        """log P(continuation | context) and is-greedy, laid out as the transformers backend
        (lm-eval's HFLM): a trailing space of the context moves to the continuation, the
        context's tokens are those of the context alone, the last n_ctx tokens are kept."""
        if not requests:
            return
        limit = self.n_ctx
        pairs = []
        for ctx, cont in requests:
            n_space = len(ctx) - len(ctx.rstrip())
            if n_space:
                ctx, cont = ctx[:-n_space], ctx[-n_space:] + cont
            whole = self.tokenize(ctx + cont)
            n_ctx = len(self.tokenize(ctx))
            ctx_ids, cont_ids = whole[:n_ctx], whole[n_ctx:]
            if not ctx_ids:
                ctx_ids = [self.prefix_token]
            pairs.append(((ctx_ids + cont_ids)[-(limit + 1) :][:-1], cont_ids))
        # Sorted by input tokens: the choices of one multiple-choice context are neighbours,
        # and its tokens are decoded once for all of them (llamacpp_batch's groups).
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0])
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            t0 = time.perf_counter()
            scored = [i for i in chunk if pairs[i][1]]
            got = dict(zip(scored, self._score([pairs[i] for i in scored])))
            dt = (time.perf_counter() - t0) / len(chunk)
            out = []
            for i in chunk:
                if i not in got:  # nothing to score
                    out.append((i, LogLikelihood(0.0, True, 0, 0.0)))
                    continue
                lp, greedy = got[i]
                out.append((i, LogLikelihood(sum(lp.tolist()), bool(greedy.all()), len(pairs[i][1]), dt)))
            yield out

    def _score(self, windows: list[tuple[list[int], list[int]]]) -> list[Any]:
        """(log-probabilities, is-argmax) of each window's targets. Windows of one input length
        go several per llama_decode (one KV stream each, one physical batch); the others one
        at a time in order, a prefix shared with the previous window decoded once."""
        out: list[Any] = [None] * len(windows)
        limit = min(self.n_batch, 512)
        by_len: dict[int, list[int]] = {}
        for w, (inp, _) in enumerate(windows):
            if len(inp) >= 2 and 2 * len(inp) <= limit:
                by_len.setdefault(len(inp), []).append(w)
        packs = []
        for length, ws in by_len.items():
            per = min(limit // length, MIN_SEQS)
            packs += [ws[k : k + per] for k in range(0, len(ws), per) if len(ws[k : k + per]) > 1]
        packed = {w for p in packs for w in p}
        alone = [w for w in range(len(windows)) if w not in packed]
        if alone:
            rows = min(max(len(windows[w][1]) for w in alone), self.n_batch)
            single = self.one(max(len(windows[w][0]) for w in alone), rows)
            before = single.stats["decodes"]
            for w in alone:
                out[w] = single.score_one(*windows[w])
            self.calls["eval"] += int(single.stats["decodes"] - before)
        if packs:
            rows = max(sum(len(windows[w][1]) for w in p) for p in packs)
            eng = self.multi(MIN_SEQS, max(len(windows[p[0]][0]) for p in packs), rows)
            for p in packs:
                self.calls["eval"] += 1
                for w, res in zip(p, eng.score_together([windows[w] for w in p])):
                    out[w] = res
        return out

    def rolling_loglikelihood(
        self, texts: Sequence[str], max_length: int, stride: int, batch_size: int
    ) -> Iterator[list[tuple[int, RollingLL]]]:
        """NLL of every token of each text, in the transformers backend's windows (lm-eval's
        layout, `harness.models.windows`); windows are capped at n_ctx."""
        if not texts:
            return
        max_length = min(max_length, self.n_ctx)
        stride = min(stride, max_length)
        context_len = max_length - stride + 1
        prefix = self.prefix_token
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            t0 = time.perf_counter()
            ids = {i: self.tokenize(texts[i]) for i in chunk}
            windows, owner = [], []
            for i in chunk:
                for w in rolling_windows(ids[i], prefix, max_length, context_len):
                    windows.append(w)
                    owner.append(i)
            sums: dict[int, list[float]] = {i: [] for i in chunk}
            for i, (lp, _) in zip(owner, self._score(windows)):
                sums[i].append(sum(lp.tolist()))
            dt = (time.perf_counter() - t0) / len(chunk)
            out = []
            for i in chunk:
                if not ids[i]:
                    out.append((i, RollingLL(None, 0, 0.0, "empty text: no tokens to score")))
                    continue
                nll = 0.0
                for s in sums[i]:  # window by window, as before: the same float sum
                    nll -= s
                out.append((i, RollingLL(nll, len(ids[i]), dt)))
            yield out


def _outgrown(eng: Engine, rows: int) -> bool:
    """Whether a decode of `rows` logits rows would grow a context that already output many:
    llama.cpp then holds its old and new buffers at once (measured: +170 MiB peak going from
    256 to 512 rows), while a new context costs ~15 ms."""
    return eng.rows_out_max >= 64 and rows > eng.rows_out_max


def _version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return None
