"""Config files: YAML parsed with line numbers, validated into pydantic models.

Validation errors name the file, the line and the field, and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.errors import UserError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationParams(Strict):
    """How outputs are generated. Part of the cache key: change any field, regenerate."""

    max_new_tokens: int = Field(128, ge=1, le=8192)
    """Upper bound on generated tokens."""
    temperature: float = Field(0.0, ge=0.0)
    """0 = greedy decoding (the default, reproducible)."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass; only used when temperature > 0."""
    stop: list[str] = Field(default_factory=list)
    """Output is cut at the first of these strings."""


class LocatedYaml:
    """A parsed YAML document plus a map from key paths to 1-based line numbers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError("file not found", path=path) from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read file: {e}", path=path) from None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark else None
            problem = getattr(e, "problem", None) or str(e)
            raise UserError(f"malformed YAML: {problem}", path=path, line=line) from None
        self.lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._index(node, ())

    def _index(self, node: yaml.Node, loc: tuple[Any, ...]) -> None:
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                self.lines[loc + (k.value,)] = k.start_mark.line + 1
                self._index(v, loc + (k.value,))
                self.lines[loc + (k.value,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._index(v, loc + (i,))

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """Line of the deepest known prefix of `loc`."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None

    def error(self, message: str, loc: tuple[Any, ...]) -> UserError:
        field = ".".join(str(p) for p in loc) or None
        return UserError(message, path=self.path, line=self.line_of(loc), field=field)

    def validate(self, model: type[M], data: Any | None = None, loc: tuple[Any, ...] = ()) -> M:
        """Validate (part of) the document into `model`, errors located in the file."""
        try:
            return model.model_validate(self.data if data is None else data)
        except pydantic.ValidationError as e:
            # A misspelt key usually also shows up as a missing one: report the misspelling.
            err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
            where = loc + tuple(p for p in err["loc"] if not _is_union_tag(p))
            msg = "unknown key (not allowed here)" if err["type"] == "extra_forbidden" else err["msg"]
            raise self.error(msg, where) from None


def _is_union_tag(p: Any) -> bool:
    # pydantic inserts discriminator/union member names into error locations
    return isinstance(p, str) and ("[" in p or p.startswith("function-"))
