"""Output in a pipe or a CI log is never cut, and a terminal of 100 columns holds it (#23 §7, §8).

The real CLI in a subprocess: stdout a pipe (no COLUMNS, as under `| cat` or in CI), or a real
pseudo-terminal 100 columns wide.
"""

from __future__ import annotations

import json
import os
import pty
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests import report_store as rs
from tests.conftest import ROOT
from tests.test_report_many import add_model

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def piped(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """`tunegate ARGS | cat`: stdout a pipe and no COLUMNS, as a shell pipeline or CI gives it."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH", "LINES")}
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "tunegate", *args]
    r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def in_terminal(*args: str, columns: int = 100) -> str:
    """`tunegate ARGS` on a real pseudo-terminal `columns` wide; what it showed, colours removed."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH", "LINES")}
    p = subprocess.Popen([sys.executable, "-m", "tunegate", *args], cwd=ROOT, env={**env, "TERM": "xterm"},
                         stdin=slave, stdout=slave, stderr=slave)  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert p.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode("utf-8", errors="replace")).replace("\r\n", "\n")


# Every command's help in one process (each through the app as `tunegate … --help` runs it), so
# the check covers commands added later without starting thirty interpreters.
HELP_OF_EVERY_COMMAND = """
import json, sys
import click, typer.main
from tunegate.cli import app

def walk(cmd, path):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, path + [name])

facts = {}
for path, cmd in walk(typer.main.get_command(app), []):
    opts = [o for p in cmd.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts]
    texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    texts += [sub.short_help or sub.help or "" for sub in getattr(cmd, "commands", {}).values()]
    facts[" ".join(path)] = {"opts": opts, "ellipses": sum(t.count("\\u2026") for t in texts)}
    print("\\x00" + " ".join(path), flush=True)
    try:
        app(path + ["--help"], standalone_mode=False, prog_name="tunegate")
    except SystemExit:
        pass
    sys.stdout.flush()
print("\\x00FACTS " + json.dumps(facts), flush=True)
"""


def test_help_of_every_command_is_whole_in_a_pipe():
    out = piped(code=HELP_OF_EVERY_COMMAND).stdout
    parts = out.split("\x00")[1:]
    facts = json.loads(parts.pop().removeprefix("FACTS "))
    helps = {p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts}
    assert len(helps) >= 25 and {"", "run", "suites metrics", "db merge", "report"} <= set(helps)
    for path, text in helps.items():
        for opt in facts[path]["opts"]:  # never cut (--allow-noop-ada…) nor broken across lines
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text), f"tunegate {path} --help: {opt}"
        assert text.count("…") == facts[path]["ellipses"], f"tunegate {path} --help is cut:\n{text}"


def test_suites_metrics_rows_are_whole_in_a_pipe():
    import inspect

    from suites.metrics import METRICS

    lines = piped("suites", "metrics").stdout.splitlines()
    for name in METRICS.names():
        doc = (inspect.getdoc(METRICS.get(name).factory) or "").split("\n")[0]
        row = next(line for line in lines if line.startswith(f"│ {name} "))
        assert doc in row and "…" not in row, row


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    db = rs.make_store(tmp_path_factory.mktemp("out") / "t.duckdb", n=30, words=60)
    add_model(db, "m-x", "hf:/models/x", "r-qa-x", "model x answers", 0.0)
    add_model(db, "m-d2", "base-model?adapter=runs/dpo", "r-qa-d2", "second dpo answers", 1.0)
    return db


def test_compare_prints_regressed_outputs_whole_in_a_pipe(store):
    args = ("compare", "r-qa-base", "r-qa-cand", "--db", str(store), "--top", "3")
    rec = json.loads(piped(*args, "--json").stdout)
    text = piped(*args).stdout
    shown = [r for m in rec["metrics"] for r in m["regressed"][:3]]
    assert shown and all(len(r["baseline_output"]) > 300 for r in shown)  # longer than any line width
    for r in shown:
        assert f"base={r['baseline_output']!r}" in text and f"cand={r['candidate_output']!r}" in text
    assert "…" not in text


def test_compare_of_three_candidates_fits_100_columns_with_verdicts(store):
    args = ("compare", "m-base", "m-cand", "m-x", "m-d2", "--db", str(store))
    shown = in_terminal(*args)
    lines = shown.splitlines()
    from rich.cells import cell_len

    assert max(cell_len(line) for line in lines) <= 100, shown
    rows = [line for line in lines if line.startswith("qa ") and "token_f1" in line]
    assert len(rows) == 3, shown
    assert rows[1].split()[3] == "x" and rows[1].rstrip().endswith("▼")  # scored 0: worse
    assert rows[2].split()[3:5] == ["dpo", "(m-d2)"] and rows[2].rstrip().endswith("▲")  # scored 1
    assert "x: m-x (hf:/models/x)" in shown
    # in a pipe: the same rows, every value whole
    text = piped(*args).stdout
    assert "leaderboard: 3 candidates against base-model" in text and "▼" in text and "▲" in text
    assert "…" not in text
