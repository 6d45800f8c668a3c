"""The backend registry: spec scheme → the module that parses, resolves and opens it.

Entries name their functions as "module:object" strings and are imported only when a spec of
that scheme is used, so `tunegate --help` never imports torch, llama.cpp or an HTTP client.

To add a backend: write one module with `parse_spec(raw, body, params) -> ModelSpec`,
`resolve(spec) -> ResolvedModel` and a class implementing `harness.models.base.Backend`, then
add one `BACKENDS.register(BackendEntry(...))` line below.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, TypedDict

from harness.errors import UserError


@dataclass(frozen=True)
class BackendEntry:
    """One backend: the spec kinds it handles and where its code lives."""

    scheme: str
    """What users write before the colon: `openai:`, `llamacpp:` …"""
    parse: str
    """'module:function' (raw, body, params) -> ModelSpec; checks paths/URLs, no weights."""
    resolve: str
    """'module:function' (spec) -> ResolvedModel: files, fingerprint, model id."""
    open: str
    """'module:class' (resolved) -> Backend."""
    summary: str
    kinds: tuple[str, ...] = ()
    """ModelSpec.kind values this entry owns (default: the scheme)."""

    def load(self, which: str) -> Any:
        module, _, name = getattr(self, which).partition(":")
        return getattr(importlib.import_module(module), name)


class BackendRegistry:
    """Explicit scheme → entry map, with did-you-mean and snapshot/restore for tests."""

    def __init__(self) -> None:
        self._entries: dict[str, BackendEntry] = {}

    def register(self, entry: BackendEntry) -> BackendEntry:
        if entry.scheme in self._entries:
            raise ValueError(f"backend scheme '{entry.scheme}' is already registered")
        self._entries[entry.scheme] = entry
        return entry

    def schemes(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, scheme: object) -> bool:
        return scheme in self._entries

    def get(self, scheme: str) -> BackendEntry:
        try:
            return self._entries[scheme]
        except KeyError:
            close = difflib.get_close_matches(scheme, self._entries, n=1)
            hint = f" Did you mean '{close[0]}:'?" if close else ""
            known = ", ".join(f"{s}:" for s in self.schemes())
            raise UserError(f"unknown model scheme '{scheme}:'.{hint} Known: {known} or smollm2") from None

    def for_kind(self, kind: str) -> BackendEntry:
        for e in self._entries.values():
            if kind in (e.kinds or (e.scheme,)):
                return e
        raise KeyError(kind)

    def snapshot(self) -> dict[str, BackendEntry]:
        return dict(self._entries)

    def restore(self, snap: dict[str, BackendEntry]) -> None:
        self._entries = dict(snap)


BACKENDS = BackendRegistry()


class _Hooks(TypedDict):
    parse: str
    resolve: str


_LOCAL = _Hooks(parse="harness.models.spec:parse_local", resolve="harness.models.resolve:resolve_local")
BACKENDS.register(
    BackendEntry(
        "hf",
        open="harness.models.hf:HFModel",
        summary="a Hugging Face folder through transformers (+ ?adapter=DIR, device, dtype, 4-bit)",
        kinds=("hf", "alias"),
        **_LOCAL,
    )
)
BACKENDS.register(
    BackendEntry(
        "gguf",
        open="harness.models.hf:HFModel",
        summary="a GGUF file de-quantized into transformers (loading only: not what ships)",
        **_LOCAL,
    )
)
BACKENDS.register(
    BackendEntry(
        "llamacpp",
        parse="harness.models.llamacpp:parse_spec",
        resolve="harness.models.llamacpp:resolve",
        open="harness.models.llamacpp:LlamaCppBackend",
        summary="a GGUF file in-process through llama.cpp, with its own quantization (what ships)",
    )
)
BACKENDS.register(
    BackendEntry(
        "openai",
        parse="harness.models.openai_backend:parse_spec",
        resolve="harness.models.openai_backend:resolve",
        open="harness.models.openai_backend:OpenAIBackend",
        summary="any OpenAI-compatible server or API (vLLM, Ollama, llama.cpp, TGI, SGLang, hosted)",
    )
)
BACKENDS.register(
    BackendEntry(
        "predictions",
        parse="harness.models.spec:parse_predictions",
        resolve="harness.models.resolve:resolve_predictions",
        open="harness.models.predictions:PredictionsBackend",
        summary="outputs made elsewhere, replayed by example id or order",
    )
)
