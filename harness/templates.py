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

import contextvars
import functools
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from harness.errors import UserError
from harness.limits import TEMPLATE_CHARS, TEMPLATE_SECONDS


class _TemplateLimit(Exception):
    """A render went past a limit (time, size, a huge power): a located error, never a hang."""


_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("template_deadline", default=math.inf)


def _check_time() -> None:
    if time.monotonic() > _deadline.get():
        raise _TemplateLimit(f"the template ran past {TEMPLATE_SECONDS.named()}")


def _check_size(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple) and len(value) > TEMPLATE_CHARS.value():
        raise _TemplateLimit(f"a value of {len(value):,} items goes past {TEMPLATE_CHARS.named()}")
    return value


def _check_args(args: Any, kwargs: Mapping[str, Any]) -> None:
    cap = TEMPLATE_CHARS.value()
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > cap:
            raise _TemplateLimit(f"the number {a} is larger than {TEMPLATE_CHARS.named()}")


def _check_format(fmt: Any) -> None:
    """A format string may not ask for a field wider than the cap (`'{:>9999999999}'`)."""
    if isinstance(fmt, str):
        cap = TEMPLATE_CHARS.value()
        for digits in re.findall(r"\d{7,}", fmt):
            if int(digits) > cap:
                raise _TemplateLimit(f"the format width {digits} is larger than {TEMPLATE_CHARS.named()}")


class _LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a time budget, a size cap on values, and no huge powers or
    repetitions (`9 ** 9 ** 9`, `'x' * 10**12` would hang or exhaust the runner)."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "%":
            _check_format(left)
        if operator == "**" and isinstance(left, int) and isinstance(right, int | float):
            if right > 0 and abs(left) > 1 and max(abs(left).bit_length(), 1) * right > 64 * 1024:
                raise _TemplateLimit(f"{left} ** {right} is too large a number for a template")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(n, int):
                    if len(seq) * n > TEMPLATE_CHARS.value():
                        raise _TemplateLimit(
                            f"repeating a value {n} times goes past {TEMPLATE_CHARS.named()}"
                        )
        return _check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_time()
        _check_args(args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        if attribute in ("format", "format_map"):  # `'{:>9999999999}'.format(1)`
            _check_format(obj)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)


def _limited_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps jinja_pass_arg (pass_context, pass_environment…)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        _check_args(args[1:], kwargs)  # the filtered value may be any number; its options may not
        for a in args[:2]:  # the value (or, after a context/environment, the value): `format`
            _check_format(a)
        return _check_size(fn(*args, **kwargs))

    return wrapper


_ENV = _LimitedSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
_ENV.filters = {name: _limited_filter(f) for name, f in _ENV.filters.items()}

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
        token = _deadline.set(time.monotonic() + TEMPLATE_SECONDS.value())
        try:
            return self._render({"record": record, **record})
        except _TemplateLimit as e:
            raise self._locate(f"template stopped: {e}") from None
        except RecursionError:
            raise self._locate(
                "template stopped: it recurses too deep (a macro that calls itself?)"
            ) from None
        except MemoryError:
            raise self._locate(f"template stopped: out of memory (see {TEMPLATE_CHARS.env})") from None
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
        finally:
            _deadline.reset(token)

    def _render(self, context: Mapping[str, Any]) -> str:
        """The output, piece by piece, so time and size are checked while it grows."""
        cap, parts, size = TEMPLATE_CHARS.value(), [], 0
        for part in self._template.generate(context):
            size += len(part)
            if size > cap:
                raise _TemplateLimit(f"the output goes past {TEMPLATE_CHARS.named()}")
            _check_time()
            parts.append(part)
        return "".join(parts)
