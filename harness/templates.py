"""User-supplied Jinja templates (suite prompts, judge questions), rendered in a sandbox.

A suite file is untrusted input: a pull request that adds one runs in CI. A plain
`jinja2.Environment` lets `{{ cycler.__init__.__globals__.os.popen('id').read() }}` run a
shell command, so every user template is compiled in Jinja's `ImmutableSandboxedEnvironment`
(no underscore attributes, no mutating methods on lists/dicts, no unsafe callables) with
`StrictUndefined`. Records are passed as *data* (one mapping), never as keyword arguments, so a
field named `self` or `template` cannot collide with a Python parameter. Every field is a
variable; the whole record is also `record` (unless it has a field of that name), which reaches
fields whose names Jinja reserves (`{{ record['self'] }}`: `self` is Jinja's own reference).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from harness.errors import UserError

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)

Locate = Callable[[str], UserError]
"""Builds the located error (file, line, field) for a message about this template."""


class UserTemplate:
    """A compiled user template; `render(record)` raises located `UserError`s, never tracebacks."""

    def __init__(self, source: str, locate: Locate, name: str = "the template") -> None:
        self._locate = locate
        self.name = name
        try:
            tree = _ENV.parse(source)
            self._template = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise locate(f"invalid Jinja template: {e.message} (template line {e.lineno})") from None
        if any(n.name == "self" and n.ctx == "load" for n in tree.find_all(jinja2.nodes.Name)):
            # Jinja binds `self` to its own template reference: never the record's field
            raise locate("'self' is Jinja's own name, not a record field: write {{ record['self'] }}")

    def render(self, record: Mapping[str, Any], *, record_error: Locate | None = None) -> str:
        """Render with the record's fields as variables.

        A sandbox violation is the template's fault (located at the template); a missing field
        is the record's (located with `record_error` when given).
        """
        try:
            return self._template.render({"record": record, **record})
        except SecurityError as e:
            raise self._locate(
                f"template rejected by the sandbox: {e} (templates may read fields, use filters, "
                "loops and conditionals, but not Python internals)"
            ) from None
        except jinja2.UndefinedError as e:
            if record_error is not None:
                raise record_error(f"record lacks a field {self.name} uses ({e.message})") from None
            raise self._locate(f"template uses an undefined value ({e.message})") from None
        except jinja2.TemplateError as e:
            raise self._locate(f"template failed to render: {e}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
            # e.g. `{{ n + 'a' }}` or `{{ x|int(base=99) }}`: a bad expression, not a crash
            raise self._locate(f"template failed to render: {type(e).__name__}: {e}") from None
