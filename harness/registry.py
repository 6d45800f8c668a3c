"""An explicit registry of named, factory-built units (metrics, suite kinds, gate checks,
aggregations).

A factory's typed keyword arguments *are* its config: `build(name, args)` validates the
args against the signature and returns the unit plus a frozen spec (name + all bound
arguments, defaults included) that is stored beside results so any number can be traced
to exactly what produced it.

Every lookup first loads the `tunegate.plugins` entry points (harness.plugins), once: a
third-party package registers into the same registries as tunegate's built-ins, and nothing is
loaded before a registry is read (never at `tunegate --help`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pydantic

from harness.errors import UserError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered factory and the static facts about what it builds."""

    name: str
    factory: Callable[..., T]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Built(Generic[T]):
    """A unit built from a registry together with its reproducible spec."""

    unit: T
    entry: Entry[T]
    spec: dict[str, Any]


class Registry(Generic[T]):
    """Name → factory, with did-you-mean lookups and snapshot/restore for tests."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **info: Any) -> Callable[[F], F]:
        """Decorator: register `factory` under `name` with static `info` (returned as it is)."""

        def deco(factory: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = Entry(name, factory, dict(info))
            return factory

        return deco

    def names(self) -> list[str]:
        _plugins()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Every entry in registration order (the order gate checks are applied in)."""
        _plugins()
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        _plugins()
        return name in self._entries

    def get(self, name: str) -> Entry[T]:
        _plugins()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UserError(f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(self.names())}") from None

    def build(self, name: str, args: dict[str, Any] | None = None) -> Built[T]:
        """Build `name` with keyword `args`, validated against the factory signature."""
        entry = self.get(name)
        args = dict(args or {})
        sig = inspect.signature(entry.factory)
        unknown = [k for k in args if k not in sig.parameters]
        if unknown:
            raise UserError(
                f"{self.kind} '{name}' has no option '{unknown[0]}'; "
                f"options: {', '.join(sig.parameters) or '(none)'}",
                field=unknown[0],
            )
        try:
            unit = pydantic.validate_call(entry.factory)(**args)
            bound = sig.bind(**args)
        except pydantic.ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise UserError(f"{self.kind} '{name}': {err['msg']}", field=loc) from None
        except TypeError as e:
            raise UserError(f"{self.kind} '{name}': {e}") from None
        bound.apply_defaults()
        spec = {"name": name, "args": _jsonable(dict(bound.arguments))}
        return Built(unit, entry, spec)

    def snapshot(self) -> dict[str, Entry[T]]:
        _plugins()
        return dict(self._entries)

    def restore(self, snap: dict[str, Entry[T]]) -> None:
        self._entries = dict(snap)


def _plugins() -> None:
    from harness.plugins import load_plugins  # imports importlib.metadata only when first read

    load_plugins()


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)
