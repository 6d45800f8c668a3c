"""Secrets never stored, logged or rendered, whoever repeats them (issue #14, item 3).

A judge over loopback HTTP (the misbehaving fake server) quotes the API key it was sent in its
rationale; the model's outputs and the data repeat it too. The real CLI runs the suite, writes
the report and logs at debug level; the key must be in none of the DuckDB file's bytes, the
HTML or the logs.
"""

from __future__ import annotations

import json
import logging

import pytest

from harness.secrets import ScrubFilter, register_secret_env, scrub
from tests.conftest import run_cli, write_suite
from tests.fake_openai import FakeOpenAI, answer_for

KEY = "sk-test-9f8e7d6c5b4a39281706"
ENV = "MY_JUDGE_KEY"  # a configured name, not the default: the config is what registers it


@pytest.fixture()
def server():
    with FakeOpenAI() as srv:
        yield srv


def _echoing_reply(body: dict) -> str:
    """A well-formed judgment whose every text field quotes the Authorization header."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
    answer = answer_for(schema)
    return json.dumps(
        {k: (f"you sent Bearer {KEY}, thanks" if isinstance(v, str) else v) for k, v in answer.items()}
        | {"rationale": f"Authorization: Bearer {KEY}"}
    )


def test_echoed_key_is_in_no_stored_rendered_or_logged_text(tmp_path, server):
    server.reset(reply=_echoing_reply)
    rows = [
        {"id": f"q{i}", "question": f"Question {i}?", "answer": "yes", "note": f"key {KEY}"} for i in range(3)
    ]
    endpoint = {"base_url": server.base_url, "model": "fake", "api_key_env": ENV, "backoff_base": 0.01}
    suite = write_suite(
        tmp_path / "s",
        f"""name: echo
kind: judge
data: data.jsonl
prompt: "{{{{ question }}}} ({{{{ note }}}})"
reference: answer
generation: {{max_new_tokens: 6}}
judge:
  type: rubric
  criteria:
    - {{name: accuracy, description: "Correct?", max_points: 4}}
  endpoint: {json.dumps(endpoint)}
""",
        "".join(json.dumps(r) + "\n" for r in rows),
    )
    db = tmp_path / "t.duckdb"
    env = {ENV: KEY}
    r = run_cli("--debug", "run", "-m", "smollm2", "-s", str(suite), "--db", str(db), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert server.state.requests and all(q["auth"] == f"Bearer {KEY}" for q in server.state.requests)
    report = tmp_path / "report.html"
    rep = run_cli("--debug", "report", "smollm2", "--output", str(report), "--db", str(db), env=env)
    assert rep.returncode == 0, rep.stderr[-3000:]

    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    rationales = [x for (x,) in con.execute("SELECT rationale FROM judgments").fetchall()]
    prompts = [x for (x,) in con.execute("SELECT prompt FROM generations").fetchall()]
    con.close()
    assert len(rationales) == 3 and all(x == "Authorization: Bearer ***" for x in rationales), rationales
    assert len(prompts) == 3 and all("(key ***)" in p for p in prompts), prompts
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("t.duckdb*"))
    assert KEY.encode() not in stored
    html = report.read_text(encoding="utf-8")
    assert "Bearer ***" in html and KEY not in html
    logs = r.stdout + r.stderr + rep.stdout + rep.stderr
    assert "DEBUG" in logs and KEY not in logs


def test_scrub_covers_escaped_forms_and_log_records(monkeypatch):
    monkeypatch.setenv("TG_TEST_SECRET", 'ab"cd\\ef-123456')
    register_secret_env("TG_TEST_SECRET")
    secret = 'ab"cd\\ef-123456'
    assert scrub(f"x {secret} y") == "x *** y"
    assert secret not in scrub(json.dumps({"v": secret})) and "***" in scrub(json.dumps({"v": secret}))
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "got %s", (secret,), None)
    ScrubFilter().filter(record)
    assert record.getMessage() == "got ***"
    monkeypatch.setenv("TG_TEST_SECRET", "short")  # too short to be a key: outputs stay intact
    assert scrub("a short answer") == "a short answer"
