"""The backend contract: what every model backend implements and declares.

In the style of lm-eval's `LM`: lists of requests in, results out, but yielded batch by batch
as `(index, result)` pairs so the runner stores each batch as it lands. A backend declares its
`Capabilities`; the runner checks a suite's request types against them before the first call
and refuses a mismatch with one message naming both.

Adding a backend is one module plus one registration in `harness.models.registry`: a
`BackendEntry` with the spec scheme, the module path of its `parse`/`resolve`/`open` functions
(imported lazily, so `tunegate --help` never imports torch) and a one-line description.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

if TYPE_CHECKING:
    from harness.config import GenerationParams
    from harness.models.adapters import CandidateInfo
    from harness.models.batching import BatchSize
    from harness.models.chat_template import TemplateChoice
    from harness.models.resolve import ResolvedModel
    from harness.suite import Example, Request, Suite

Batch = list[tuple[int, Any]]
"""(index into the request list, result) pairs: one batch, in any order."""


@dataclass(frozen=True)
class Generated:
    """One generation: the text, or an error with its reason (never an empty string for a failure)."""

    text: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    latency_s: float
    error: str | None = None
    usage: dict[str, Any] | None = None
    """Endpoint-reported extras (finish reason, token usage) stored with the generation."""


@dataclass(frozen=True)
class RollingLL:
    """Summed negative log-likelihood (nats) of every token of a text."""

    nll: float | None
    n_tokens: int
    latency_s: float
    error: str | None = None


@dataclass(frozen=True)
class LogLikelihood:
    """log P(continuation | context): summed log-probability (nats), and whether greedy decoding
    from the context would produce exactly the continuation's tokens (lm-eval's `is_greedy`)."""

    logprob: float | None
    is_greedy: bool | None
    n_tokens: int
    latency_s: float
    error: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a backend can serve. The runner and the suite kinds read this; nobody probes
    attributes with getattr."""

    requests: frozenset[str]
    """Request types served: generate, loglikelihood, rolling_loglikelihood."""
    chat: bool = True
    """Chat requests (messages) are served: rendered with a local template or sent as messages."""
    raw_prompts: bool = True
    """Raw-text generation requests are served (a chat-only endpoint says False)."""
    tokenizer: bool = False
    """A local tokenizer is available (token counts, windows, chat templates)."""
    local_weights: bool = False
    """A loaded transformers model object is available (lm-eval's HFLM, the local judge)."""
    auto_batch: bool = False
    """`batch_size="auto"` is served (the largest batch that fits, halved on out-of-memory);
    for other backends the CLI turns `auto` into a fixed size."""
    replay: bool = False
    """Outputs are replayed from a file by example id (predictions); no model is called."""
    endpoint: bool = False
    """A remote server: it cannot prove which weights it serves (runs are marked as such)."""
    why_not: dict[str, str] = field(default_factory=dict)
    """Request type or capability → why it is missing, for the refusal message."""

    def refusal(self, needed: str) -> str | None:
        """None when `needed` is served, else the reason it is not."""
        have = needed in self.requests or bool(getattr(self, needed, False))
        if have:
            return None
        return self.why_not.get(needed, "this backend does not serve it")


NEED_WORDS = {
    "generate": "text generation",
    "loglikelihood": "continuation log-probabilities",
    "rolling_loglikelihood": "prompt log-probabilities",
    "local_weights": "a locally loaded transformers model",
    "raw_prompts": "raw-text completions",
}


@runtime_checkable
class Backend(Protocol):
    """A model the runner can call. Methods a backend lacks the capability for may raise.
    `batch_size` is "auto" only for a backend whose capabilities say `auto_batch`."""

    resolved: ResolvedModel
    capabilities: Capabilities
    calls: dict[str, int]
    """Model invocations (batches or HTTP calls), so tests and benches can prove cache hits."""

    def prepare(self, request: Request) -> Request:
        """The request exactly as it will be sent: a local backend renders `messages` into
        `prompt` with its own chat template; a chat endpoint keeps the messages. The cache key
        hashes the prepared request."""
        ...

    def generate(
        self,
        requests: Sequence[Request],
        params: GenerationParams,
        batch_size: BatchSize,
        seed: int | None = None,
    ) -> Iterator[Batch]:
        """Continuations of prepared requests, yielded per batch as (index, Generated)."""
        ...

    def loglikelihood(self, requests: Sequence[tuple[str, str]], batch_size: BatchSize) -> Iterator[Batch]:
        """(context, continuation) pairs → (index, LogLikelihood) per batch."""
        ...

    def rolling_loglikelihood(
        self, texts: Sequence[str], max_length: int, stride: int, batch_size: BatchSize
    ) -> Iterator[Batch]:
        """Whole texts → (index, RollingLL) per batch, strided windows of `max_length` tokens."""
        ...

    def describe(self) -> dict[str, Any]:
        """What is recorded with a run: device, dtype, endpoint facts (never a secret)."""
        ...

    def scoring(self) -> dict[str, Any]:
        """Backends that serve log-likelihoods: how they score (harness.measurement), as
        {tokenizer, prefix_token, first_token_scored, prefix_source}; valid after `preflight`."""
        ...

    def preflight(self, needed: set[str], what: str) -> None:
        """Called once per suite before the first call: a backend that must verify a capability
        on the live model (an endpoint's log-probabilities) raises UserError here."""
        ...


@runtime_checkable
class ReplayBackend(Backend, Protocol):
    """A backend that replays outputs made elsewhere (`capabilities.replay`: a predictions file)
    instead of calling a model: it is bound to a suite's examples before anything is stored."""

    def bind(self, suite: Suite, examples: Sequence[Example]) -> None:
        """Check the outputs cover `examples` (by id or by order); raises UserError if not."""
        ...

    def replay(self, example_ids: Sequence[str]) -> Iterator[Batch]:
        """The stored outputs of `example_ids`, yielded per batch as (index, Generated)."""
        ...


def as_replay(backend: Backend) -> ReplayBackend | None:
    """`backend` as a ReplayBackend when it declares `capabilities.replay` (the declaration is
    the contract: a backend that says replay implements bind and replay)."""
    return cast("ReplayBackend", backend) if backend.capabilities.replay else None


@runtime_checkable
class CandidateBackend(Backend, Protocol):
    """One of several candidates (a base, its adapters, checkpoints) evaluated on one load of the
    base: what a `BackendEntry.candidates` host returns. Each is its own model and run."""

    info: CandidateInfo
    """Its role, chat template, adapter check and sweep step, recorded with each run."""

    def use_suite_template(self, option: str | None) -> TemplateChoice | None:
        """Pick the chat template for the next suite (its `chat_template`; None: the model's own)."""
        ...


def render_messages_plain(messages: Sequence[dict[str, str]]) -> str:
    """The fallback when a model has no chat template: the turns' texts, one per line."""
    return "\n".join(m["content"] for m in messages) + "\n"


def prepare_local(request: Request, render_chat: Any) -> Request:
    """`prepare` for a backend with a local template: messages → rendered prompt text."""
    if request.messages is None:
        return request
    from dataclasses import replace

    return replace(request, prompt=render_chat(list(request.messages)), messages=None)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """Text up to the first stop string (servers and local decoders overshoot by design)."""
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text
