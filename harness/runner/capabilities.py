"""Refuse a suite the backend cannot serve, before the first call and before anything is stored."""

from __future__ import annotations

from harness.errors import UserError
from harness.models.base import NEED_WORDS, Backend
from harness.suite import Suite, SuiteKind


def check_capabilities(backend: Backend, suite: Suite) -> None:
    """One message naming the suite, what it needs, the model, and why the model cannot."""
    caps = backend.capabilities
    needed = sorted(suite.request_types()) + sorted(suite.needs())
    for need in needed:
        why = caps.refusal(need)
        if why is None:
            continue
        raise UserError(
            f"{suite.kind} suite {suite.config.name} needs {NEED_WORDS.get(need, need)}; "
            f"{backend.resolved.spec.raw} does not provide them ({why})"
        )
    # e.g. an endpoint proving its echo log-probabilities are right; raises with what it found
    backend.preflight(set(needed), f"{suite.kind} suite {suite.config.name}")
    if not caps.chat and isinstance(suite, SuiteKind) and suite.request_types() == {"generate"}:
        example = suite.examples[0] if suite.examples else None
        if example is not None and suite.request(example).is_chat:
            raise UserError(
                f"{suite.kind} suite {suite.config.name} sends chat messages; "
                f"{backend.resolved.spec.raw} has no chat template or chat endpoint "
                "(set chat: false in the suite, or give the model a tokenizer)"
            )
