"""deepeval with our judge client as its model: GEval and any other deepeval metric.

`TunegateDeepEvalModel(client, store=...)` is a `DeepEvalBaseLLM`: deepeval's structured calls
(`generate(prompt, schema=PydanticModel)`) go through our client, so they get our concurrency
limit, retries, Retry-After handling, structured-output negotiation (llama.cpp included) and,
with a store, the judgment cache. Telemetry, Confident AI uploads and .env loading are switched
off before deepeval is imported; nothing leaves the machine except the calls to your endpoint.

deepeval is optional (`pip install 'tunegate[deepeval]'`): it pulls ~20 packages, pytest plugins among them,
and pins click below what huggingface-hub needs, so tunegate does not depend on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from typing import Any

from harness.store import Store
from judges.cache import Judgment, cached_judgments, judgment_key, write_judgments
from judges.client import Call, JudgeClient, Reply

_OFFLINE_ENV = {
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    "DEEPEVAL_TELEMETRY_ENABLED": "NO",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "DEEPEVAL_UPDATE_WARNING_OPT_IN": "NO",
    "DEEPEVAL_GRPC_LOGGING": "NO",
    "ERROR_REPORTING": "NO",
}


def import_deepeval() -> Any:
    """deepeval, imported with telemetry and network side channels off."""
    for k, v in _OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    try:
        import deepeval
        from deepeval.models import DeepEvalBaseLLM  # noqa: F401
    except ImportError:
        from harness.errors import UserError

        raise UserError(
            "deepeval is not installed (needed for deepeval judges): pip install 'tunegate[deepeval]' "
            "(best in an environment of its own: it pins click and brings pytest plugins)"
        ) from None
    return deepeval


def _base_class() -> type:
    import_deepeval()
    from deepeval.models import DeepEvalBaseLLM

    return DeepEvalBaseLLM


def TunegateDeepEvalModel(client: JudgeClient, store: Store | None = None) -> Any:  # noqa: N802
    """A deepeval model object backed by `client` (and cached in `store` when given)."""
    base = _base_class()

    class _Model(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.client = client
            self.store = store
            self.calls = 0
            super().__init__(client.model)

        def load_model(self, *args: Any, **kwargs: Any) -> Any:
            return self.client

        def get_model_name(self, *args: Any, **kwargs: Any) -> str:
            return f"tunegate:{self.client.identity}"

        def generate(self, prompt: str, schema: Any = None, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.a_generate(prompt, schema=schema))
            # called synchronously from inside a running loop: run ours in a worker thread
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, self.a_generate(prompt, schema=schema)).result()

        async def a_generate(self, prompt: str, schema: Any = None, **kwargs: Any) -> Any:
            json_schema = schema.model_json_schema() if schema is not None else None
            validate = schema.model_validate if schema is not None else (lambda text: text)
            key = judgment_key(self.client.identity, {"deepeval": json_schema}, prompt, [])
            if self.store is not None:
                hit = cached_judgments(self.store, [key]).get(key)
                if hit is not None:  # a cached judgment is a successful call: it has its text
                    return validate(json.loads(hit.raw or "")) if schema is not None else hit.raw
            self.calls += 1
            reply = await self.client.complete(
                Call([{"role": "user", "content": prompt}], json_schema, validate)
            )
            if self.store is not None:
                write_judgments(self.store, [_row(key, self.client.identity, json_schema, reply)])
            if reply.error:
                raise RuntimeError(f"judge call failed: {reply.error}")
            return reply.value

    return _Model()


def _row(key: str, identity: str, schema: Any, r: Reply) -> Judgment:
    raw = r.raw
    if r.error is None and hasattr(r.value, "model_dump_json"):
        raw = r.value.model_dump_json()  # the validated object: re-validates on a cache hit
    return Judgment.from_reply(key, "deepeval", identity, {"schema": schema}, r, raw=raw)
