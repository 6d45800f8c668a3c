"""The CLI as users and CI run it: exit codes, bad input, kill + resume, quickstart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from harness.store import Store
from tests.conftest import ROOT, run_cli, table_dump, write_suite

GOOD = """name: qa
kind: task
data: data.jsonl
prompt: "Q: {{ q }}"
reference: a
generation: {max_new_tokens: 6}
metrics: [exact_match]
"""
ROWS = "".join(
    json.dumps({"id": f"e{i:02d}", "q": f"What is {i} plus {i}?", "a": str(2 * i)}) + "\n" for i in range(24)
)


@pytest.fixture()
def seeded_db(tmp_path):
    """A store that already holds a run, to prove bad input leaves it untouched."""
    path = tmp_path / "keep.duckdb"
    with Store(path) as s:
        s.upsert_model("m-1", "smollm2", "alias", "f" * 64)
        s.upsert_suite("qa-1", "qa", "task", "h", "qa.yaml", {}, [("a", {"q": 1}, ["x"])])
        s.create_run(
            "r-keep",
            "m-1",
            "qa-1",
            config={},
            seed=1,
            versions={},
            git_sha=None,
            host="h",
            n_examples=1,
            metrics=[("em", {}, "mean", True, True)],
        )
    return path


BAD_CASES = {
    "malformed yaml": (GOOD.replace("kind: task", "kind: [task"), ROWS, "malformed YAML"),
    "unknown key": (GOOD + "temprature: 0\n", ROWS, "suite.yaml:8 field 'temprature': unknown key"),
    "unknown metric": (
        GOOD.replace("[exact_match]", "[exact_macth]"),
        ROWS,
        "Did you mean 'exact_match'",
    ),
    "missing data": (
        GOOD.replace("data.jsonl", "nope.jsonl"),
        ROWS,
        "nope.jsonl: data file not found",
    ),
    "not json": (GOOD, ROWS + "{oops\n", "data.jsonl:25: not valid JSON"),
    "missing field": (
        GOOD,
        ROWS + '{"id": "x", "q": "?"}\n',
        "data.jsonl:25 field 'a': record lacks the reference field",
    ),
    "empty dataset": (GOOD, "\n", "dataset is empty"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_suite_input_exits_2_with_one_clear_line(tmp_path, seeded_db, case):
    yaml_text, data, message = BAD_CASES[case]
    suite = write_suite(tmp_path / "s", yaml_text, data)
    before = table_dump(seeded_db)
    r = run_cli("run", "--model", "smollm2", "--suite", str(suite), "--db", str(seeded_db))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr.replace("\n", "")
    assert "Traceback" not in r.stderr
    assert table_dump(seeded_db) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["run", "--model", "hf:/no/such/model", "--suite", "finetune-qa"],
            "model path does not exist: /no/such/model",
        ),
        (
            ["run", "--model", "smollm2?dtype=int3", "--suite", "finetune-qa"],
            "dtype must be one of",
        ),
        (["run", "--resume", "r-nope"], "unknown run id 'r-nope'"),
        (["show", "r-nope"], "unknown run id 'r-nope'"),
        (["compare", "r-keep", "r-nope"], "unknown run id 'r-nope'"),
        (
            ["run", "--model", "smollm2", "--suite", "no-such-suite"],
            "no suite file 'no-such-suite'",
        ),
    ],
)
def test_bad_model_and_run_ids_exit_2(seeded_db, args, message):
    before = table_dump(seeded_db)
    r = run_cli(*args, "--db", str(seeded_db))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr.replace("\n", "")
    assert table_dump(seeded_db) == before


def test_missing_store_for_show_is_exit_2_and_creates_nothing(tmp_path):
    r = run_cli("show", "r-1", "--db", str(tmp_path / "none.duckdb"))
    assert r.returncode == 2 and "no tunegate store" in r.stderr
    assert not (tmp_path / "none.duckdb").exists()


def test_help_does_not_import_torch():
    code = "import sys; from tunegate.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
    assert run_cli("--help").returncode == 0


def _start_run(suite, db, *extra):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunegate",
            "run",
            "--model",
            "smollm2",
            "--suite",
            str(suite),
            "--db",
            str(db),
            "--batch-size",
            "2",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job (as CI may start us) inherits SIGINT ignored, and Python then
        # never raises KeyboardInterrupt; give the run the default disposition a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_stored(proc, at_least: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    for line in proc.stderr:
        if ": " in line and " stored " in line:
            done = int(line.split(": ", 1)[1].split("/")[0])
            if done >= at_least:
                return
        if time.time() > deadline:
            break
    proc.kill()
    pytest.fail("the run never reported stored batches")


def _examples(db, run_id):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT example_id, cache_key FROM run_examples WHERE run_id = ? ORDER BY 1", [run_id]
        ).fetchall()
    finally:
        con.close()


def _only_run(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT run_id, status FROM runs").fetchall()
    finally:
        con.close()


def test_killed_run_resumes_without_duplicates_or_gaps(tmp_path):
    suite = write_suite(tmp_path / "s", GOOD, ROWS)
    db = tmp_path / "r.duckdb"
    proc = _start_run(suite, db)
    _wait_for_stored(proc, 4)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest crash
    proc.wait()
    [(run_id, status)] = _only_run(db)
    assert status == "running"
    before = _examples(db, run_id)
    assert 4 <= len(before) < 24

    r = run_cli("run", "--resume", run_id, "--db", str(db), "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    assert f"({24 - len(before)} done now" in r.stdout
    after = _examples(db, run_id)
    assert [e for e, _ in after] == [f"e{i:02d}" for i in range(24)]  # no gaps, no duplicates
    assert set(before) <= set(after)  # what was stored before the crash is kept as it was
    assert _only_run(db) == [(run_id, "completed")]
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT example_id) FROM scores").fetchone() == (
        24,
        24,
    )
    con.close()


def test_ctrl_c_marks_the_run_interrupted(tmp_path):
    suite = write_suite(tmp_path / "s", GOOD, ROWS)
    db = tmp_path / "r.duckdb"
    proc = _start_run(suite, db)
    _wait_for_stored(proc, 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    [(run_id, status)] = _only_run(db)
    assert status == "interrupted"
    assert 2 <= len(_examples(db, run_id)) < 24


def test_quickstart_end_to_end(tmp_path):
    db = tmp_path / "q.duckdb"
    r = run_cli("quickstart", "--limit", "3", "--steps", "3", "--db", str(db), timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "candidate" in r.stdout and "steps    3/3" in r.stdout
    assert "comparison (paired over examples)" in r.stdout
    assert "wins/losses/ties" in r.stdout
    assert "gate passed" in r.stdout or "gate failed" in r.stdout
    html = (tmp_path / "quickstart-report.html").read_text(encoding="utf-8")
    assert "Scoreboard" in html and "judge-qa" in html
    con = duckdb.connect(str(db), read_only=True)
    runs = con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall()
    models = con.execute("SELECT count(*) FROM models").fetchone()[0]
    # The candidate is the trained adapter, registered with its base and its training run.
    lineage = con.execute(
        "SELECT t.kind, t.status, c.base_model_id = t.parent_model_id, count(l.step) > 0 "
        "FROM models c JOIN training_runs t ON c.model_id = t.candidate_model_id "
        "LEFT JOIN training_logs l USING (training_run_id) GROUP BY ALL"
    ).fetchall()
    scans = con.execute(
        "SELECT count(*) FROM contamination_scans s JOIN training_runs t USING (training_run_id)"
    ).fetchone()[0]
    con.close()
    assert scans == 1  # quickstart's training data scanned against its suites, linked to the run
    assert "contamination: training data vs eval suites" in r.stdout
    assert runs == [("completed", 12)] and models == 2
    assert lineage == [("sft", "completed", True, True)]
    r2 = run_cli("runs", "--db", str(db))
    assert r2.returncode == 0 and r2.stdout.count("completed") == 12


def test_installed_packages_work_outside_the_checkout(tmp_path):
    """Every top-level package and its bundled data import from the install, not the cwd."""
    code = (
        "import harness, judges, reports, suites, trainers, trainers.quickstart\n"
        "from trainers.config import BUNDLED_DATA\n"
        "from suites.loader import BUILTIN_DIR\n"
        "assert all(p.is_file() for p in BUNDLED_DATA.values())\n"
        "assert (BUILTIN_DIR / 'policies' / 'quickstart.yaml').is_file()\n"
        "import reports.render\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
