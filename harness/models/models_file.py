"""A models file: one base and the adapters to evaluate on it (`run -m candidates.yaml`).

base: smollm2
adapters: [out/a, out/b]     # folders relative to this file
include_base: true
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness.config import LocatedYaml, Strict


class CandidatesFile(Strict):
    """A models file listing one base and its adapters."""

    base: str
    """Model spec of the base (a local transformers model, with load options)."""
    adapters: list[str] = Field(min_length=1)
    """Adapter folders (relative to this file)."""
    include_base: bool = True
    """Evaluate the base too, as the baseline of the leaderboard."""


def read_candidates_file(path: Path) -> tuple[str, list[str], bool] | None:
    """(base, adapters, include_base) when `path` is a YAML models file with `adapters:`; else None."""
    if not str(path).endswith((".yaml", ".yml")) or not path.is_file():
        return None
    doc = LocatedYaml(path)
    if not isinstance(doc.data, dict) or "adapters" not in doc.data:
        return None
    cfg = doc.validate(CandidatesFile)
    adapters = []
    for i, a in enumerate(cfg.adapters):
        p = Path(a).expanduser()
        p = p if p.is_absolute() else path.parent / p
        if not (p / "adapter_config.json").is_file():
            raise doc.error(f"adapter folder {p} has no adapter_config.json", ("adapters", i))
        adapters.append(str(p.resolve()))
    return cfg.base, adapters, cfg.include_base
