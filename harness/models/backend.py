"""Pick the backend for a resolved model spec (imports torch only for a real model)."""

from __future__ import annotations

from typing import Any

from harness.models.resolve import ResolvedModel


def open_backend(resolved: ResolvedModel) -> Any:
    """The file replayer for `predictions:` specs, else a local Hugging Face model."""
    if resolved.spec.kind == "predictions":
        from harness.models.predictions import PredictionsBackend

        return PredictionsBackend(resolved)
    from harness.models.hf import HFModel

    return HFModel(resolved)
