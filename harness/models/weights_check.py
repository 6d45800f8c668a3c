"""Weights are loaded from safetensors only: a pickled checkpoint can run code when it is loaded.

Checked when a spec is resolved, so a folder with only `pytorch_model.bin` (or an adapter with
only `adapter_model.bin`) is one clear refusal before a run is created, not a traceback and a
`failed` run.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError

PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def require_safetensors(weights: Path | None, adapter: Path | None = None) -> None:
    """Refuse a model or adapter folder whose weights are only in pickle-based files."""
    for folder, what in ((weights, "model"), (adapter, "adapter")):
        if folder is None or not folder.is_dir():
            continue  # a GGUF file, an endpoint, or a path other checks report
        if any(folder.glob("*.safetensors")):
            continue
        pickled = sorted(p.name for pattern in PICKLED for p in folder.glob(pattern))
        if pickled:
            raise UserError(
                f"{what} weights are only in pickled file(s) {', '.join(pickled[:3])}: tunegate loads "
                "safetensors only (pickles can run code when loaded); convert them with "
                "`model.save_pretrained(DIR, safe_serialization=True)`",
                path=folder,
            )
