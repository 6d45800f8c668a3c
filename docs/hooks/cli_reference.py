"""mkdocs hook: the CLI reference, generated from the Typer app when the site is built.

`docs/cli.md` holds the marker below; every command of the app (groups walked recursively) is
rendered in its place with its usage, help and options, so the reference cannot drift from the
code. Declared under `hooks:` in mkdocs.yml.
"""

from __future__ import annotations

import html
import re
from typing import Any

MARKER = "<!-- cli-reference -->"


def cli_app() -> Any:
    """The Typer app: the only place the docs import the CLI (change here when it moves)."""
    from tunegate.cli import app

    return app


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())


def render() -> str:
    """Markdown for every command: a heading `tunegate SUB …`, usage, help, options."""
    import typer

    root = typer.main.get_command(cli_app())
    root_ctx = root.context_class(root, info_name="tunegate")
    out: list[str] = []
    _command(root, root_ctx, out)
    return "\n".join(out)


def commands(cmd: Any, ctx: Any) -> list[tuple[Any, Any]]:
    """(command, context) for `cmd` and every command under it, depth first, sorted by name."""
    found = [(cmd, ctx)]
    for name in sorted(getattr(cmd, "commands", {})):
        sub = cmd.commands[name]
        if not sub.hidden:
            found += commands(sub, sub.context_class(sub, info_name=name, parent=ctx))
    return found


def _command(root: Any, root_ctx: Any, out: list[str]) -> None:
    for cmd, ctx in commands(root, root_ctx):
        path = ctx.command_path
        level = "##" if path.count(" ") <= 1 else "###"  # `tunegate run` and `tunegate db merge`
        out += [f"{level} {path}", ""]
        out += ["```text", cmd.get_usage(ctx).strip(), "```", ""]
        if cmd.help:
            out += [_text(cmd.help.split("\f")[0]), ""]
        records = [(p, p.get_help_record(ctx)) for p in cmd.get_params(ctx)]
        for title, kind in (("Arguments", "argument"), ("Options", "option")):
            rows = [r for p, r in records if r and p.param_type_name == kind]
            if rows:
                out += [f"**{title}**", ""]
                for names, text in rows:
                    text = " ".join(text.split())  # one paragraph: a list item holds it
                    out.append(f"- `{names}`" + (f": {_text(text)}" if text else ""))
                out.append("")
        subs = sorted(n for n, s in getattr(cmd, "commands", {}).items() if not s.hidden)
        if subs:
            out += ["**Commands**: " + ", ".join(f"[`{n}`](#{_anchor(f'{path} {n}')})" for n in subs), ""]


def _anchor(title: str) -> str:
    """The id Python-Markdown's toc gives a heading `tunegate db merge`."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


def _text(text: str) -> str:
    """Help text as Markdown: backtick spans kept, HTML and emphasis characters escaped outside."""
    parts = text.strip().split("`")
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        parts[i] = re.sub(r"([*_\[\]])", r"\\\1", html.escape(parts[i], quote=False))
    return "`".join(parts) if len(parts) % 2 else html.escape(text.strip(), quote=False)
