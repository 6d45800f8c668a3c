"""Code that a suite brings with it runs only when the person running tunegate says so.

Templates are data: they render in Jinja's sandbox (harness.templates; lm-eval task templates
too, `sandbox_lm_eval`). Two things a suite can name are Python by design — an lm-eval task
YAML's `!function` (imported from the task folder) and an `hf_evaluate` metric module — so a
pull request that adds a suite could run anything in CI. They are refused unless the caller
trusts the suite's code: `tunegate --trust-code …` or `TUNEGATE_TRUST_CODE=1`. The trust comes
from the command line or the environment, never from the suite file itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import UserError

ENV = "TUNEGATE_TRUST_CODE"
_trusted = False


def trust_code(on: bool = True) -> None:
    """`--trust-code`: this process may run Python that suites bring (task functions, metrics)."""
    global _trusted
    _trusted = on


def code_trusted() -> bool:
    return _trusted or os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes")


def require_trust(
    what: str, path: str | Path | None = None, line: int | None = None, field: str | None = None
) -> None:
    """A located error unless the caller trusts suite code."""
    if code_trusted():
        return
    raise UserError(
        f"{what} runs Python code from the suite's files; tunegate runs it only when you trust "
        f"them: pass --trust-code (tunegate --trust-code run …) or set {ENV}=1",
        path=path,
        line=line,
        field=field,
    )


def sandbox_lm_eval() -> None:
    """Render lm-eval's task templates (doc_to_text, doc_to_target, …) in Jinja's sandbox.

    lm-eval compiles them with a plain `jinja2.Environment` (`lm_eval.utils.env`), where
    `{{ cycler.__init__.__globals__.os.popen('id').read() }}` in a task YAML runs a command. The
    sandbox keeps lm-eval's settings and filter; it is the mutable `SandboxedEnvironment` (no
    Python internals, no unsafe callables) because lm-eval's own templates may call list methods.
    """
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment
    from lm_eval import utils

    if isinstance(utils.env, SandboxedEnvironment):
        return
    env = SandboxedEnvironment(
        loader=jinja2.BaseLoader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    env.filters.update(utils.env.filters)
    utils.env = env
