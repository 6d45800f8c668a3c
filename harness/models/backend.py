"""Open the backend for a resolved model spec (imports torch only for a local model)."""

from __future__ import annotations

from typing import Any

from harness.models.resolve import ResolvedModel


def open_backend(resolved: ResolvedModel) -> Any:
    """The registered backend class for the spec's kind, instantiated on `resolved`."""
    from harness.models.registry import BACKENDS

    return BACKENDS.for_kind(resolved.spec.kind).load("open")(resolved)
