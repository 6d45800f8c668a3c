"""Config files: YAML parsed with line numbers, validated into pydantic models.

Validation errors name the file, the line and the field, and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harness.errors import UserError
from harness.limits import YAML_NODES, Limit

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are immutable, numbers are
    finite (`.nan`, `.inf` are refused) and a boolean is never a number (`max_drop: true` is not 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _number_not_bool(field.annotation):
                raise ValueError("expected a number, not true/false")
        return value


def _number_not_bool(annotation: Any) -> bool:
    """Whether a field takes numbers but no booleans (bool is an int subclass to pydantic's lax mode)."""
    seen: set[Any] = set()
    stack = [annotation]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        stack.extend(get_args(t))
    return bool(seen & {int, float}) and bool not in seen


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


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys (YAML says they are an error; PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node, limit: Limit) -> None:
    """Refuse a document whose aliases expand past `limit` nodes (a billion-laughs bomb) or
    refer to themselves; counted on the node graph, without expanding anything."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > limit.int_value():
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the document expands (through aliases) past {limit.named()}",
                    node.start_mark,
                )
            continue
        if key in sizes:
            continue
        if key in open_:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to the node that contains it", node.start_mark
            )
        open_.add(key)
        stack.append((node, True))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((c, False) for c in node.value if id(c) not in sizes)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((c, False) for pair in node.value for c in pair if id(c) not in sizes)


def load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """(the node tree, the data) of one YAML document: safe tags only, duplicate keys refused,
    alias expansion bounded by `harness.limits.YAML_NODES`. Raises `yaml.YAMLError`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _expanded_size(node, YAML_NODES)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


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
            node, self.data = load_yaml(text)
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
