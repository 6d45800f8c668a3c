"""Limits where untrusted input grows: YAML, templates, HTTP replies, JSON records.

Each limit has a default no real workload reaches, an environment variable to raise it, and is
named in the message that refuses the input, so a user who hits one knows what to change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from harness.errors import UserError


@dataclass(frozen=True)
class Limit:
    """One bound on untrusted input."""

    env: str
    """The environment variable that overrides the default."""
    default: float
    unit: str
    """What is counted, for messages ('nodes', 'seconds', …)."""

    def value(self) -> float:
        raw = os.environ.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            v = float(raw)
        except ValueError:
            raise UserError(f"{self.env}={raw!r} is not a number") from None
        if not v > 0:
            raise UserError(f"{self.env}={raw!r} must be a positive number")
        return v

    def int_value(self) -> int:
        return int(self.value())

    def named(self) -> str:
        """'the limit of N unit (raise it with ENV)', for messages."""
        v = self.value()
        shown = f"{int(v):,}" if v == int(v) else f"{v:g}"
        return f"the limit of {shown} {self.unit} (raise it with {self.env})"


YAML_NODES = Limit("TUNEGATE_MAX_YAML_NODES", 200_000, "YAML nodes after expanding aliases")
TEMPLATE_SECONDS = Limit("TUNEGATE_MAX_TEMPLATE_SECONDS", 10, "seconds per template render")
TEMPLATE_CHARS = Limit("TUNEGATE_MAX_TEMPLATE_CHARS", 4_000_000, "characters per rendered template or value")
HTTP_SECONDS = Limit("TUNEGATE_MAX_HTTP_SECONDS", 900, "seconds per HTTP call, the whole reply included")
HTTP_BYTES = Limit("TUNEGATE_MAX_HTTP_BYTES", 16 * 1024 * 1024, "bytes per HTTP reply after decompression")
JSON_DEPTH = Limit("TUNEGATE_MAX_JSON_DEPTH", 100, "levels of JSON nesting")
