"""A load run: check everything, store the run, then each level of the sweep in one piece.

Before anything is stored the suites must send generate requests, the model must be an
`openai:` endpoint, and one streamed request must succeed (which also finds whether the server
accepts `stream_options.include_usage`). Each level's finished requests are written per batch
in a transaction; a level is `completed` once its summary is stored. `--resume` (or a rerun
after kill -9) keeps the completed levels and measures an unfinished one again from the start
(its partial rows are deleted in the transaction that restarts it): a level's numbers always
come from one uninterrupted period, and no request is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness import signals
from harness.errors import UserError
from harness.load.client import StreamClient, request_body
from harness.load.driver import Prompt, Sent, drive
from harness.load.plan import LoadOptions
from harness.load.stats import summarize
from harness.store import Store
from harness.store import load as load_store
from harness.suite import SuiteKind, content_hash, suite_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadTarget:
    """The endpoint under load and how to reach it."""

    backend: Any
    """An opened `openai:` backend (its `prepare` renders prompts as a quality run sends them)."""
    suites: list[SuiteKind]

    @property
    def resolved(self) -> Any:
        return self.backend.resolved


def check_target(backend: Any, suites: list[SuiteKind]) -> None:
    """User errors for a model or suite that cannot be put under load."""
    spec = backend.resolved.spec
    if spec.kind != "openai":
        raise UserError(
            f"tunegate load measures a served deployment: give --model openai:MODEL@URL, not '{spec.raw}'",
            field="model",
        )
    for s in suites:
        types = s.request_types()
        if types != {"generate"}:
            raise UserError(
                f"suite '{s.config.name}' ({s.kind}) sends {', '.join(sorted(types))} requests; "
                "load replays generated answers: give task or judge-free suites",
                path=s.path,
            )


def prompts_for(backend: Any, suites: list[SuiteKind], limit: int | None, usage: bool) -> list[Prompt]:
    """Every example's request as the backend would send it, with the suite's parameters."""
    model = backend.resolved.options["model"]
    out = []
    for s in suites:
        sid = suite_id(s)
        for ex in s.examples[:limit] if limit else s.examples:
            req = backend.prepare(s.request(ex))
            path, body = request_body(model, req, dict(req.params), usage)
            out.append(Prompt(sid, ex.id, path, body))
    return out


def client_factory(backend: Any, count_tokens: Any) -> Callable[[int], StreamClient]:
    transport = backend.transport
    return lambda n: StreamClient(
        transport.base_url,
        transport.key(),
        timeout=transport.policy.timeout,
        max_connections=max(n, 1),
        scrub=transport.scrub,
        count_tokens=count_tokens,
    )


def preflight(backend: Any, prompt: Prompt, count_tokens: Any) -> bool:
    """One streamed request before anything is stored: True when the server accepts
    `stream_options.include_usage`; a server that does not answer is a user error."""
    make = client_factory(backend, count_tokens)
    url = backend.transport.base_url

    async def once(body: dict[str, Any]) -> Any:
        client = make(1)
        try:
            return await client.send(prompt.path, body, 0.0)
        finally:
            await client.aclose()

    got = asyncio.run(once(prompt.body))
    usage = True
    if got.error is not None and got.status in (400, 422):
        body = {k: v for k, v in prompt.body.items() if k != "stream_options"}
        got, usage = asyncio.run(once(body)), False
    if got.error is not None:
        raise UserError(f"the endpoint {url} failed a streamed request before the load started: {got.error}")
    return usage


def ready(target: LoadTarget) -> bool:
    """Every check before anything is stored, and the preflight request; whether the server
    accepts `stream_options.include_usage`."""
    check_target(target.backend, target.suites)
    first = prompts_for(target.backend, target.suites[:1], 1, True)[0]
    return preflight(target.backend, first, _token_counter(target.backend))


def _row(s: Sent) -> tuple[Any, ...]:
    t = s.timed
    return (
        s.seq, s.prompt.suite_id, s.prompt.example_id, s.scheduled_s, t.sent_s, t.e2e_s, t.ttft_s,
        t.itl_s if t.error is None else None, t.prompt_tokens, t.output_tokens, t.tokens_from, t.status,
        t.error, t.failed_after_s,
    )  # fmt: skip


def run_load(
    store: Store,
    target: LoadTarget,
    options: LoadOptions,
    *,
    resume: str | None = None,
    usage: bool | None = None,
    on_level: Callable[[int, Any, dict[str, Any]], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> str:
    """Run (or resume) a load run; returns its id. `on_level(index, level, stored level row)`
    after each level; `on_batch(n)` after each stored batch. `usage`: what `ready` found (else
    it is called here)."""
    backend, suites = target.backend, target.suites
    count_tokens = _token_counter(backend)
    if usage is None:
        usage = ready(target)
    prompts = prompts_for(backend, suites, options.limit, usage)
    resolved = target.resolved
    if resume:
        run = load_store.get_load_run(store, resume)
        if run.model_id != resolved.model_id:
            raise UserError(f"load run {run.load_run_id} is of model {run.model_id} ({run.model_spec}), "
                            f"not {resolved.model_id}")  # fmt: skip
        if run.status == "completed":
            raise UserError(f"load run {run.load_run_id} is already completed")
        want = [s["suite_id"] for s in run.suites]
        if want != [suite_id(s) for s in suites]:
            raise UserError(f"load run {run.load_run_id} replayed suites {', '.join(want)}; "
                            "the suites given (or their data) differ")  # fmt: skip
        load_run_id = run.load_run_id
        done = {lv["level"] for lv in load_store.levels(store, load_run_id) if lv["status"] == "completed"}
        load_store.reopen_load_run(store, load_run_id)
    else:
        _register(store, resolved, suites)
        from harness.runner.run import git_sha, versions

        load_run_id = "l-" + secrets.token_hex(4)
        config = {
            **options.record(),
            "model_spec": resolved.spec.raw,
            "suite_paths": [str(s.path) for s in suites],
            "endpoint": backend.describe(),
            "stream_usage": usage,
            "n_prompts": len(prompts),
            "client_host": platform.node(),
        }
        load_store.create_load_run(
            store, load_run_id, resolved.model_id,
            [{"suite_id": suite_id(s), "name": s.config.name, "path": str(s.path)} for s in suites],
            config=config, seed=options.seed, versions=versions(), git_sha=git_sha(),
        )  # fmt: skip
        done = set()
    make = client_factory(backend, count_tokens)
    warm = options.warmup
    try:
        for i, level in enumerate(options.levels):
            if i in done:
                continue
            load_store.start_level(store, load_run_id, i, level.mode, level.value)
            for batch in drive(make, prompts, level, options, options.seed + i, warmup=warm):
                load_store.write_requests(store, load_run_id, i, [_row(s) for s in batch])
                if on_batch:
                    on_batch(len(batch))
            warm = 0
            summary = summarize(load_store.request_columns(store, load_run_id, i))
            load_store.finish_level(store, load_run_id, i, summary.record())
            if on_level:
                on_level(
                    i, level, next(lv for lv in load_store.levels(store, load_run_id) if lv["level"] == i)
                )
    except KeyboardInterrupt:
        load_store.mark_load_run(store, load_run_id, "interrupted", signals.reason())
        signals.note_interrupted("load", load_run_id, str(store.path))
        raise
    except Exception as e:
        load_store.mark_load_run(store, load_run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    load_store.mark_load_run(store, load_run_id, "completed")
    return load_run_id


def _token_counter(backend: Any) -> Callable[[str], int] | None:
    """With ?tokenizer=DIR: output tokens of a server that sends no usage are counted with it."""
    folder = backend.resolved.options.get("tokenizer")
    if not folder:
        return None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def _register(store: Store, resolved: Any, suites: list[SuiteKind]) -> None:
    store.upsert_model(
        resolved.model_id, resolved.spec.raw, resolved.spec.kind, resolved.fingerprint,
        load_options=resolved.options,
    )  # fmt: skip
    for s in suites:
        config = s.config.model_dump(mode="json")
        examples = [(ex.id, ex.record, ex.references) for ex in s.examples]
        store.upsert_suite(suite_id(s), s.config.name, s.kind, content_hash(s), str(s.path), config, examples)
