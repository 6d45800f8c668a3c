"""Find, parse and validate suite files (built-in names or paths)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.config import LocatedYaml
from harness.errors import UserError
from suites.base import SUITE_KINDS, SuiteKind

BUILTIN_DIR = Path(__file__).parent / "builtin"


def builtin_suites() -> dict[str, Path]:
    """Built-in suite name → file."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.yaml"))}


def suite_path(ref: str) -> Path:
    """A path, or the name of a built-in suite."""
    p = Path(ref).expanduser()
    if p.exists() or ref.endswith((".yaml", ".yml")) or "/" in ref:
        return p
    builtin = builtin_suites()
    if ref in builtin:
        return builtin[ref]
    raise UserError(
        f"no suite file '{ref}' and no built-in suite of that name (built-in: {', '.join(builtin)})",
        field="suite",
    )


def load_suite(ref: str | Path) -> SuiteKind:
    """Parse, validate and load a suite with its examples; every problem is a located UserError."""
    path = suite_path(str(ref))
    doc = LocatedYaml(path)
    if not isinstance(doc.data, dict):
        raise UserError("a suite file must be a YAML mapping", path=path, line=1)
    kind = doc.data.get("kind")
    if kind is None:
        raise doc.error("missing required key 'kind'", ())
    try:
        cls = SUITE_KINDS.get(str(kind)).factory
    except UserError as e:
        raise doc.error(e.detail, ("kind",)) from None
    config = doc.validate(cls.config_model)
    return cls(config, doc)


def content_hash(suite: SuiteKind) -> str:
    """Hash of the suite file and its data: a changed suite is a different suite."""
    h = hashlib.sha256()
    h.update(suite.path.read_bytes())
    h.update(b"\0")
    h.update(suite.data_path().read_bytes())
    return h.hexdigest()


def suite_id(suite: SuiteKind) -> str:
    return f"{suite.config.name}-{content_hash(suite)[:10]}"
