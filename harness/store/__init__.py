"""The DuckDB store (see DESIGN.md § Store)."""

from harness.store.db import GenerationRow, RunRecord, ScoreRow, Store

__all__ = ["GenerationRow", "RunRecord", "ScoreRow", "Store"]
