"""A backend written the way a user would add one (tests/test_backend_contract.py registers it):
one module with parse_spec / resolve / a class implementing harness.models.base.Backend. It
upper-cases the last user turn, so what it received is visible in what it answers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.models.base import Capabilities, Generated
from harness.models.resolve import ResolvedModel
from harness.models.spec import ModelSpec, check_options
from harness.suite import Request


def parse_spec(raw: str, body: str, params: dict[str, str]) -> ModelSpec:
    check_options(raw, params, set())
    return ModelSpec(raw=raw, kind="shout", path=body)


def resolve(spec: ModelSpec) -> ResolvedModel:
    fp = hashlib.sha256(f"shout\0{spec.path}".encode()).hexdigest()
    return ResolvedModel(spec, None, None, {}, fp, None, device="none")


class ShoutBackend:
    capabilities = Capabilities(requests=frozenset({"generate"}))

    def __init__(self, resolved: ResolvedModel, prefix: str = "") -> None:
        self.resolved = resolved
        self.calls: dict[str, int] = {"generate": 0}
        self.prefix = prefix

    def prepare(self, request: Request) -> Request:
        return request  # messages are sent as they are, like a chat endpoint

    def generate(
        self, requests: Sequence[Request], params: Any, batch_size: int, seed: int | None = None
    ) -> Iterator[list[tuple[int, Generated]]]:
        self.calls["generate"] += 1
        last = [(r.messages or ({"content": r.prompt},))[-1]["content"] or "" for r in requests]
        yield [(i, Generated(self.prefix + text.upper(), None, None, 0.0)) for i, text in enumerate(last)]

    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: int) -> Any:
        raise NotImplementedError

    def rolling_loglikelihood(
        self, texts: Sequence[str], max_length: int, stride: int, batch_size: int
    ) -> Any:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": "shout"}

    def preflight(self, needed: set[str], what: str) -> None:
        """Static capabilities: nothing to verify."""


def open_candidates(
    base_raw: str, adapters: list[str], *, include_base: bool, allow_noop: bool, tolerance: float
) -> list[ShoutBackend]:
    """An adapter host (`BackendEntry.candidates`) as a backend would write one: a view for the base
    and one per adapter, each its own model, answering with the adapter's folder name in front."""
    base = resolve(parse_spec(base_raw, base_raw.partition(":")[2], {}))
    views = [ShoutBackend(base)] if include_base else []
    for a in adapters:
        name = Path(a).name
        spec = ModelSpec(raw=f"{base_raw}+{name}", kind="shout", path=base.spec.path)
        fp = hashlib.sha256(f"shout\0{spec.path}\0{name}".encode()).hexdigest()
        views.append(ShoutBackend(ResolvedModel(spec, None, None, {}, fp, None, device="none"), f"{name}:"))
    return views
