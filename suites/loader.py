"""Find, parse and validate suite files (built-in names or paths)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from harness.config import LocatedYaml
from harness.errors import UserError
from harness.suite import SUITE_KINDS, SuiteKind, content_hash, register_suite_loader, suite_id  # noqa: F401

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
        cls = cast("type[SuiteKind]", SUITE_KINDS.get(str(kind)).factory)
    except UserError as e:
        raise doc.error(e.detail, ("kind",)) from None
    config = doc.validate(cls.config_model)
    return cls(config, doc)


register_suite_loader(load_suite)  # the core (harness.evaluate) loads suites through it
