"""Model specs, fingerprints and backends. Importing this package does not import torch."""

from harness.models.resolve import ResolvedModel, model_id_for, resolve_model
from harness.models.spec import ModelSpec, parse_model_spec

__all__ = ["ModelSpec", "ResolvedModel", "model_id_for", "parse_model_spec", "resolve_model"]
