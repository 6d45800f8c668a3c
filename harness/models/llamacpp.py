"""`llamacpp:FILE.gguf`: the GGUF itself, in-process through llama-cpp-python (what ships).

The file is evaluated with its own quantization and, unless `chat_template=` overrides it, the
chat template in its metadata, rendered the way llama-cpp-python renders it (Jinja in an
immutable sandbox, `add_generation_prompt=True`, the file's BOS/EOS token texts).

Log-probabilities come from `Llama.eval` + `Llama.scores` with `logits_all=True`: row i of the
scores is the distribution after token i, so token i is scored with row i-1. They are NOT taken
from `create_completion(echo=True)`, which in llama-cpp-python 0.3.36 pairs token i with row i
(shifted by one: every prompt logprob it reports is wrong). Windows and the log-likelihood
request layout are those of the transformers backend (`harness.models.windows`, lm-eval's), so
`llamacpp:` and `gguf:`/`smollm2` on the same file differ only by the quantized arithmetic.

Spec options: n_ctx=N (default: the file's context length, capped at 8192), n_threads=N
(default: the CPUs this process may use), n_batch=N, chat_template=FILE-or-TEXT.
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
from harness.models.resolve import ResolvedModel
from harness.models.spec import ModelSpec, check_options
from harness.models.windows import rolling_windows
from harness.suite import Request

log = logging.getLogger(__name__)

_OPTIONS = {"n_ctx", "n_threads", "n_batch", "chat_template"}
# Options that change the numbers go into the fingerprint; threads only change the speed, and a
# chat template changes the rendered prompt, which the cache key already hashes.
_NUMERIC_OPTIONS = ("n_ctx", "n_batch")
# A 128k-context file would otherwise allocate a multi-GB KV cache for 1k-token windows.
DEFAULT_MAX_CTX = 8192

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
    h = hashlib.sha256()
    h.update(b"llamacpp\0" + file_sha256(weights).encode())
    h.update(b"options\0" + json.dumps(options, sort_keys=True).encode())
    facts = {"file": weights.name}
    if "chat_template" in spec.options:
        facts["chat_template_sha256"] = hashlib.sha256(spec.options["chat_template"].encode()).hexdigest()
    return ResolvedModel(spec, weights, None, options, h.hexdigest(), None, device="cpu", facts=facts)


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
        self._llm: Any = None
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
        if self._llm is None:
            t0 = time.perf_counter()
            self._llm = self._llama(
                n_ctx=self.n_ctx,
                n_batch=self.n_batch,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                logits_all=True,  # every position's logits: prompt log-probabilities
            )
            # closed before interpreter teardown, when Llama.__del__ would fail noisily
            atexit.register(self._llm.close)
            if self._vocab is not None:
                self._vocab.close()
                self._vocab = None
            log.info("loaded %s with llama.cpp in %.1f s", self.path.name, time.perf_counter() - t0)
        return self._llm

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

    def token_logprobs(self, tokens: Sequence[int], first_row: int = 0) -> Any:
        """Log-softmax rows `first_row:` (float64 numpy, one row per token × vocab): row i is
        the distribution of the token after `tokens[i]`. The KV cache of a prefix shared with
        the previous call is reused (a multiple-choice context is evaluated once)."""
        import numpy as np

        tokens = list(tokens)
        if not tokens:
            return np.zeros((0, 0))
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens do not fit n_ctx={self.n_ctx}")
        llm = self.llm
        keep = 0
        if not (llm._is_recurrent or llm._is_hybrid):  # only attention caches can be truncated
            for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens):
                if a != b:
                    break
                keep += 1
        if keep < llm.n_tokens:
            llm._requires_eval = True  # the context's last logits are not this prefix's
        llm.n_tokens = keep
        if keep < len(tokens):
            self.calls["eval"] += 1
            llm.eval(tokens[keep:])
        rows = np.asarray(llm.scores[first_row : len(tokens)], dtype=np.float64)
        peak = rows.max(axis=1, keepdims=True)
        return rows - (peak + np.log(np.exp(rows - peak).sum(axis=1, keepdims=True)))

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
        """Greedy (temperature 0) or sampled continuations, one sequence at a time (llama.cpp
        decodes one sequence here), yielded `batch_size` at a time for the runner to store.
        Sampling seeds each request from `seed` in a fixed order: a run is reproducible."""
        if not requests:
            return
        ids = [self._prompt_ids(r) for r in requests]
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
        seeds = random.Random(seed)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            yield [(i, self._generate_one(ids[i], params, seeds.getrandbits(31))) for i in chunk]

    def _generate_one(self, ids: list[int], params: GenerationParams, seed: int) -> Generated:
        t0 = time.perf_counter()
        sampled = params.temperature > 0
        kwargs: dict[str, Any] = dict(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p if sampled else 1.0,
            top_k=0,  # off, as transformers' sampling here (only top_p/temperature are set)
            min_p=0.0,
            repeat_penalty=1.0,
            stop=list(params.stop) or None,
        )
        if sampled:
            kwargs["seed"] = seed
        try:
            self.calls["generate"] += 1
            out = self.llm.create_completion(ids, **kwargs)
        except (RuntimeError, ValueError) as e:  # e.g. the prompt does not fit n_ctx
            return Generated(None, len(ids), 0, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
        choice = out["choices"][0]
        n_out = int(out["usage"]["completion_tokens"])
        text = cut_at_stop(choice["text"], params.stop)
        usage = {"finish_reason": choice.get("finish_reason")}
        return Generated(text, len(ids), n_out, time.perf_counter() - t0, usage=usage)

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
        # Sorted by input tokens: the choices of one multiple-choice context are neighbours
        # and share its KV cache (one sequence at a time, so length order buys nothing here).
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0])
        for start in range(0, len(order), batch_size):
            out = []
            for i in order[start : start + batch_size]:
                inp, tgt = pairs[i]
                t0 = time.perf_counter()
                if not tgt:
                    out.append((i, LogLikelihood(0.0, True, 0, 0.0)))
                    continue
                lp = self.token_logprobs(inp, len(inp) - len(tgt))
                picked = sum(float(lp[k, t]) for k, t in enumerate(tgt))
                greedy = all(int(lp[k].argmax()) == t for k, t in enumerate(tgt))
                out.append((i, LogLikelihood(picked, greedy, len(tgt), time.perf_counter() - t0)))
            yield out

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
            out = []
            for i in order[start : start + batch_size]:
                ids = self.tokenize(texts[i])
                if not ids:
                    out.append((i, RollingLL(None, 0, 0.0, "empty text: no tokens to score")))
                    continue
                t0 = time.perf_counter()
                nll = 0.0
                for inp, tgt in rolling_windows(ids, prefix, max_length, context_len):
                    lp = self.token_logprobs(inp, len(inp) - len(tgt))
                    nll -= sum(float(lp[k, t]) for k, t in enumerate(tgt))
                out.append((i, RollingLL(nll, len(ids), time.perf_counter() - t0)))
            yield out


def _version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        return None
