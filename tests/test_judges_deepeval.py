"""deepeval's GEval as a judge suite, graded by the real llama.cpp server through our client.

deepeval runs in its own cached environment (tests/envs.py: core tunegate + deepeval 4.3.1):
its pytest plugins and its click pin never reach this test run. The judged model and
the judge are both the bundled SmolLM2 served by the session's llama.cpp server.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

QA = [
    ("q1", "What is the capital of France?", "Paris"),
    ("q2", "How many legs does a spider have?", "eight"),
]


@pytest.fixture(scope="module")
def deepeval_env(side_env) -> Path:
    return side_env("deepeval")


def _suite(tmp_path: Path, base_url: str) -> Path:
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in QA))
    suite = tmp_path / "geval.yaml"
    suite.write_text(
        f"""name: geval-qa
kind: judge
data: qa.jsonl
prompt: "{{{{ question }}}}"
reference: answer
generation: {{max_new_tokens: 16}}
judge:
  type: deepeval
  metric: GEval
  options:
    name: Correctness
    criteria: Is the actual output factually correct given the expected output?
    evaluation_steps:
      - Compare the actual output with the expected output.
      - Give a high score only when they mean the same thing.
    evaluation_params: [input, actual_output, expected_output]
  endpoint: {{base_url: "{base_url}", model: smollm2, max_tokens: 128, temperature: 0}}
"""
    )
    return suite


def _in_env(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(env / "bin" / "tunegate"), *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def _query(env: Path, db: Path, sql: str) -> list:
    con = f"duckdb.connect({str(db)!r}, read_only=True)"
    code = f"import duckdb, json; print(json.dumps({con}.sql({sql!r}).fetchall()))"
    p = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def test_geval_suite_on_llama_server(deepeval_env, llama, tmp_path):
    suite = _suite(tmp_path, llama.base_url)
    db = tmp_path / "de.duckdb"
    model = f"openai:smollm2@{llama.base_url}"
    args = ("run", "--model", model, "-s", str(suite), "--db", str(db), "--no-progress")
    p = _in_env(deepeval_env, *args, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = _query(
        deepeval_env, db, "SELECT example_id, metric, value, error, detail FROM scores ORDER BY example_id"
    )
    assert [r[1] for r in rows] == ["correctness", "correctness"], rows
    scored = [r for r in rows if r[3] is None]
    assert scored, f"no example was judged: {rows}"
    for _, _, value, _, detail in scored:
        assert 0.0 <= value <= 1.0
        assert json.loads(detail)["reason"]
    for _, _, value, error, _ in rows:
        assert (value is None) == (error is not None)  # a failed judgment is an error, never a 0
    # every judge call went through our client and was cached in `judgments`
    (calls,) = _query(deepeval_env, db, "SELECT count(*) FROM judgments WHERE judge = 'deepeval'")[0]
    assert calls >= len(QA)
    spec = _query(deepeval_env, db, "SELECT spec FROM run_metrics WHERE metric = 'correctness'")[0][0]
    assert json.loads(spec)["args"]["metric"] == "GEval"

    # a second run scores from the caches: no new judgment, the same values
    p = _in_env(deepeval_env, *args, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert _query(deepeval_env, db, "SELECT count(*) FROM judgments WHERE judge = 'deepeval'")[0][0] == calls
    again = _query(
        deepeval_env, db, "SELECT run_id, example_id, value FROM scores ORDER BY run_id, example_id"
    )
    runs = sorted({r[0] for r in again})
    assert len(runs) == 2
    assert [r[2] for r in again if r[0] == runs[0]] == [r[2] for r in again if r[0] == runs[1]]


def test_deepeval_missing_says_which_extra(tmp_path):
    """The main environment has no deepeval: the suite is refused with the install to run."""
    import importlib.util

    if importlib.util.find_spec("deepeval") is not None:
        pytest.skip("deepeval is installed here")
    suite = _suite(tmp_path, "http://127.0.0.1:9/v1")
    model = "openai:smollm2@http://127.0.0.1:9/v1"
    p = run_cli(
        "run", "--model", model, "-s", str(suite), "--db", str(tmp_path / "x.duckdb"), "--no-progress"
    )
    assert p.returncode == 2, p.stdout + p.stderr
    assert "pip install 'tunegate[deepeval]'" in p.stderr
