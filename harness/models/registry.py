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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.models.base import Backend


class OpenCandidates(Protocol):
    """`BackendEntry.candidates`: a base and its adapters as views on one load."""

    def __call__(
        self, base_raw: str, adapters: list[str], /, *, include_base: bool, allow_noop: bool, tolerance: float
    ) -> Sequence[Backend]: ...


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
    candidates: str = ""
    """'module:function' (base_raw: str, adapters: list[str], *, include_base: bool,
    allow_noop: bool, tolerance: float) -> list of views: a base and its adapters on one load,
    each view a backend with its own run (harness.models.adapters); "" when the backend cannot
    host adapters."""
    local: bool = False
    """Weights are loaded and the chat template is rendered by tunegate (a suite's chat
    template file can apply), not by a server or a file made elsewhere."""

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
        _plugins()
        return sorted(self._entries)

    def __contains__(self, scheme: object) -> bool:
        _plugins()
        return scheme in self._entries

    def get(self, scheme: str) -> BackendEntry:
        _plugins()
        try:
            return self._entries[scheme]
        except KeyError:
            close = difflib.get_close_matches(scheme, self._entries, n=1)
            hint = f" Did you mean '{close[0]}:'?" if close else ""
            known = ", ".join(f"{s}:" for s in self.schemes())
            raise UserError(f"unknown model scheme '{scheme}:'.{hint} Known: {known} or smollm2") from None

    def for_kind(self, kind: str) -> BackendEntry:
        """The entry owning ModelSpec.kind `kind` (KeyError if none)."""
        _plugins()
        for e in self._entries.values():
            if kind in (e.kinds or (e.scheme,)):
                return e
        raise KeyError(kind)

    def snapshot(self) -> dict[str, BackendEntry]:
        return dict(self._entries)

    def restore(self, snap: dict[str, BackendEntry]) -> None:
        self._entries = dict(snap)


def _plugins() -> None:
    from harness.plugins import load_plugins  # a plugin's backends: first lookup (harness.plugins)

    load_plugins()


BACKENDS = BackendRegistry()


def _entry(kind: str) -> BackendEntry | None:
    try:
        return BACKENDS.for_kind(kind)
    except KeyError:
        return None


def is_local(kind: str) -> bool:
    """A spec kind whose weights tunegate loads and whose chat template it renders."""
    e = _entry(kind)
    return e is not None and e.local


def candidates_opener(kind: str) -> OpenCandidates | None:
    """The entry's adapter host for a spec kind (None: adapters cannot be attached to it)."""
    e = _entry(kind)
    return cast("OpenCandidates", e.load("candidates")) if e is not None and e.candidates else None


class _Hooks(TypedDict):
    parse: str
    resolve: str


_LOCAL = _Hooks(parse="harness.models.spec:parse_local", resolve="harness.models.resolve:resolve_local")
_ADAPTERS = "harness.models.adapters:open_candidates"
BACKENDS.register(
    BackendEntry(
        "hf",
        open="harness.models.hf:HFModel",
        summary="a Hugging Face folder through transformers (+ ?adapter=DIR, device, dtype, 4-bit)",
        kinds=("hf", "alias"),
        candidates=_ADAPTERS,
        local=True,
        **_LOCAL,
    )
)
BACKENDS.register(
    BackendEntry(
        "gguf",
        open="harness.models.hf:HFModel",
        summary="a GGUF file de-quantized into transformers (loading only: not what ships)",
        candidates=_ADAPTERS,
        local=True,
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
BACKENDS.register(
    BackendEntry(
        "vllm",
        parse="harness.models.vllm_backend:parse_spec",
        resolve="harness.models.vllm_backend:resolve",
        open="harness.models.vllm_backend:VllmBackend",
        summary="an HF folder (or smollm2, gguf:FILE) through vLLM's offline engine in-process (+ LoRA)",
        candidates="harness.models.vllm_backend:open_candidates",
        local=True,
    )
)
