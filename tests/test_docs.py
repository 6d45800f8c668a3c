"""The documentation site: `mkdocs build --strict` passes (and fails on a broken link, anchor or nav
entry), the CLI reference is generated from the app, and every `tunegate …` command line in
README.md and docs/ parses against the real CLI (click's `make_context`, nothing is run)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import typer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
OPERATORS = set(";&|()")


def _hook() -> ModuleType:
    """docs/hooks/cli_reference.py: it names the Typer app in one place, for the site and this test."""
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _hook()
ROOT_COMMAND = typer.main.get_command(HOOK.cli_app())  # built once: the click tree of the Typer app


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) of every shell code block: continuations joined, heredoc
    bodies and `$ ` prompts dropped."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    shell = False
    pending: tuple[int, str] | None = None
    heredoc: str | None = None
    for n, line in enumerate(text.splitlines(), start=1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence, shell = m.group(2), m.group(3).lower() in SHELL
            continue
        if m and m.group(2).startswith(fence) and not m.group(3):
            fence, pending, heredoc = None, None, None
            continue
        if not shell:
            continue
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        body = line.strip().removeprefix("$ ")
        start, joined = pending if pending else (n, "")
        joined += body
        if joined.endswith("\\"):
            pending = (start, joined[:-1] + " ")
            continue
        pending = None
        out.append((start, joined))
        if h := HEREDOC.search(joined):
            heredoc = h.group(1)
    return out


def tunegate_commands(text: str) -> list[tuple[int, list[str]]]:
    """(line number, arguments after `tunegate`) for every tunegate command in the shell blocks:
    one per `;`, `&&`, `||`, `|` or `(` segment, after leading `VAR=value` assignments."""
    found = []
    for n, line in shell_lines(text):
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        words: list[str] = []
        for tok in [*lex, ";"]:
            if tok and set(tok) <= OPERATORS:
                while words and re.match(r"^\w+=", words[0]):
                    words.pop(0)
                if words and Path(words[0]).name == "tunegate":
                    found.append((n, words[1:]))
                words = []
            else:
                words.append(tok)
    return found


def _click_errors() -> tuple[type[BaseException], ...]:
    """Usage errors and early exits of click and of the click typer vendors (typer >= 0.2x)."""
    import click

    errors: list[type[BaseException]] = [click.ClickException, click.exceptions.Exit, typer.Exit]
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        pass
    else:
        errors.append(vendored.ClickException)
    return tuple(errors)


ERRORS = _click_errors()


def _without_global_flags(args: list[str]) -> list[str]:
    """What `tunegate.cli.main` takes off the line before click sees it: --debug, --wait SECONDS."""
    out, i = [], 0
    while i < len(args):
        if args[i] == "--debug" or args[i].startswith("--wait="):
            i += 1
        elif args[i] == "--wait":
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def parse_error(args: list[str]) -> str | None:
    """Why `tunegate ARGS` does not parse against the real CLI, or None when it does."""
    cmd: Any = ROOT_COMMAND
    name, parent, rest = "tunegate", None, _without_global_flags(args)
    while True:
        try:
            ctx = cmd.make_context(name, list(rest), parent=parent, resilient_parsing=False)
        except ERRORS as e:
            if type(e).__name__ == "Exit":
                return None  # --version / --help: an eager option that ends parsing
            message = e.format_message() if hasattr(e, "format_message") else str(e)
            return f"{' '.join(['tunegate', *args])}: {type(e).__name__}: {message}"
        if not hasattr(cmd, "commands"):
            return None
        protected = getattr(ctx, "_protected_args", None)  # click >= 8.2; before: protected_args
        rest = [*(ctx.protected_args if protected is None else protected), *ctx.args]
        if not rest:
            return f"{' '.join(['tunegate', *args])}: a command group needs a command"
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            return f"{' '.join(['tunegate', *args])}: no command '{rest[0]}' in '{ctx.command_path}'"
        cmd, name, parent, rest = sub, rest[0], ctx, rest[1:]


# -- the command lines -----------------------------------------------------------------------------
def test_every_tunegate_command_line_in_the_docs_parses():
    failures, counts = [], {}
    for path in doc_files():
        calls = tunegate_commands(path.read_text(encoding="utf-8"))
        counts[path.relative_to(ROOT).as_posix()] = len(calls)
        for line, args in calls:
            if (err := parse_error(args)) is not None:
                failures.append(f"{path.relative_to(ROOT)}:{line}: {err}")
    assert not failures, "\n".join(failures)
    assert sum(counts.values()) >= 60, counts  # the extraction really finds the docs' commands
    assert counts["README.md"] >= 8 and counts["docs/models.md"] >= 8 and counts["docs/ci.md"] >= 3, counts


def test_a_wrong_option_command_or_value_is_caught():
    text = """
```bash
tunegate run --modle smollm2 --suite finetune-qa
tunegate compare r-a r-b --tset t
tunegate rnu --model smollm2
tunegate db mrege out.duckdb a.duckdb
tunegate gate --baseline a --candidate b
tunegate run --model smollm2 --suite finetune-qa --limit N
echo ok && tunegate suites valdate x.yaml
```
"""
    calls = tunegate_commands(text)
    assert len(calls) == 7
    errors = [parse_error(args) for _, args in calls]
    assert all(errors), errors
    assert "--modle" in errors[0] and "--tset" in errors[1] and "rnu" in errors[2] and "mrege" in errors[3]
    assert "--policy" in errors[4]  # a required option left out
    assert "valdate" in errors[6]


def test_well_formed_lines_parse_and_shell_syntax_is_understood():
    text = """
```bash
HF_HUB_OFFLINE=1 .venv/bin/tunegate --debug run --wait 5 -m smollm2 -s finetune-qa \\
  --limit 3   # a comment --not-an-option
cat > p.yaml <<'YAML'
tunegate is not a command inside a heredoc --nope
YAML
tunegate --trust-code --data-root ./d suites validate a.yaml b.yaml | tee out.txt
tunegate --version
```

```yaml
run: tunegate --no-such-flag   # not a shell block: not checked
```
"""
    calls = tunegate_commands(text)
    expected = [["--debug", "run"], ["--trust-code", "--data-root"], ["--version"]]
    assert [args[:2] for _, args in calls] == expected
    assert calls[0][0] == 3 and "--limit" in calls[0][1] and "--not-an-option" not in calls[0][1]
    assert [parse_error(args) for _, args in calls] == [None, None, None]


# -- the site ----------------------------------------------------------------------------------------
def _build(config_dir: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=config_dir,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )


def test_site_builds_strictly_with_the_generated_cli_reference(tmp_path):
    r = _build(ROOT, tmp_path / "site")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    page = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    root_ctx = ROOT_COMMAND.context_class(ROOT_COMMAND, info_name="tunegate")
    paths = [ctx.command_path for _, ctx in HOOK.commands(ROOT_COMMAND, root_ctx)]
    assert len(paths) >= 30 and "tunegate db merge" in paths
    for path in paths:  # every command of the app has its section, with its options
        assert f'id="{HOOK._anchor(path)}"' in page, path
    assert "--allow-mismatch" in page and "--shard" in page
    # every page of docs/ is in the nav (an omitted file is a warning, so an error in strict mode)
    assert {p.relative_to(DOCS).as_posix() for p in DOCS.glob("*.md")} <= set(
        re.findall(r":\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    )


def test_strict_build_fails_on_a_broken_link_anchor_or_nav_entry(tmp_path):
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[a](no-such-page.md) and [b](concepts.md#no-such-anchor)\n")
    config = tmp_path / "mkdocs.yml"
    nav = config.read_text().replace("  - Home: index.md", "  - Home: index.md\n  - Gone: gone.md")
    config.write_text(nav)
    r = _build(tmp_path, tmp_path / "site")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "no-such-page.md" in out and "no-such-anchor" in out and "gone.md" in out, out[-3000:]


# -- the README ---------------------------------------------------------------------------------------
def test_readme_is_short_and_links_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\((docs/[^)#]+\.md)(?:#[^)]*)?\)", readme)
    assert len(set(links)) >= 8, links
    for link in links:
        assert (ROOT / link).is_file(), link
    for command in ("bash scripts/setup.sh && .venv/bin/tunegate quickstart", "bash scripts/test.sh"):
        assert command in readme
