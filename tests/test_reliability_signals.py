"""SIGTERM is an interrupt, dead runs say so (issue #14, item 2): real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from tests.conftest import ROOT, run_cli, write_suite

SUITE = """name: qa
kind: task
data: data.jsonl
prompt: "Q: {{ q }}"
reference: a
generation: {max_new_tokens: 6}
metrics: [exact_match]
"""
ROWS = "".join(
    json.dumps({"id": f"e{i:02d}", "q": f"What is {i} plus {i}?", "a": str(2 * i)}) + "\n" for i in range(16)
)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tunegate", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background job inherits SIGINT ignored; give the default a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _start_run(suite, db) -> subprocess.Popen:
    return _start("run", "--model", "smollm2", "--suite", str(suite), "--db", str(db), "--batch-size", "2")


def _wait_for_stored(proc, at_least: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    for line in proc.stderr:
        if " stored " in line and int(line.split(": ", 1)[1].split("/")[0]) >= at_least:
            return
        if time.time() > deadline:
            break
    proc.kill()
    pytest.fail("the run never reported stored batches")


def _rows(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_sigterm_marks_the_run_interrupted_exits_143_and_resumes(tmp_path):
    suite = write_suite(tmp_path / "s", SUITE, ROWS)
    db = tmp_path / "r.duckdb"
    proc = _start_run(suite, db)
    _wait_for_stored(proc, 2)
    proc.send_signal(signal.SIGTERM)  # what CI and `timeout` send on cancel
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    [(run_id, status, error, pid)] = _rows(db, "SELECT run_id, status, error, pid FROM runs")
    assert (status, error, pid) == ("interrupted", "terminated (SIGTERM)", proc.pid)
    assert f"`tunegate run --resume {run_id} --db {db}`" in err and "Traceback" not in err
    n_before = _rows(db, "SELECT count(*) FROM run_examples")[0][0]
    assert 2 <= n_before < 16
    assert _rows(db, "SELECT count(*) FROM scores")[0][0] == n_before  # no half batch stored

    r = run_cli("run", "--resume", run_id, "--db", str(db))
    assert r.returncode == 0, r.stderr[-2000:]
    assert _rows(db, "SELECT status FROM runs") == [("completed",)]
    assert _rows(db, "SELECT count(*), count(DISTINCT example_id) FROM run_examples") == [(16, 16)]


def test_killed_run_is_shown_dead_with_how_to_resume(tmp_path):
    suite = write_suite(tmp_path / "s", SUITE, ROWS)
    db = tmp_path / "r.duckdb"
    proc = _start_run(suite, db)
    _wait_for_stored(proc, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [(run_id, status, pid, beat)] = _rows(db, "SELECT run_id, status, pid, heartbeat_at FROM runs")
    assert status == "running" and pid == proc.pid and beat is not None
    dead = f"dead (resume with tunegate run --resume {run_id})"
    listed = run_cli("runs", "--db", str(db))
    assert listed.returncode == 0 and dead in listed.stdout, listed.stdout
    shown = run_cli("show", run_id, "--db", str(db))
    assert shown.returncode == 0 and f"status {dead}" in shown.stdout, shown.stdout
    # --resume on it: tests/test_cli.py::test_killed_run_resumes_without_duplicates_or_gaps


def _handler_installed(pid: int, signum: int) -> bool:
    """Whether the process catches `signum` yet (Linux: the SigCgt mask in /proc)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signum - 1)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_before_a_run_exists_offers_no_resume(tmp_path, signum, code):
    suite = write_suite(tmp_path / "s", SUITE, ROWS)
    db = tmp_path / "r.duckdb"
    proc = _start_run(suite, db)
    deadline = time.time() + 60
    while not _handler_installed(proc.pid, signal.SIGTERM) and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signum)  # while the suite and the model load: no run row yet
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "before any run was stored: nothing to resume" in err
    assert "--resume" not in err and "Traceback" not in err
    assert not db.exists() or _rows(db, "SELECT count(*) FROM runs") == [(0,)]
