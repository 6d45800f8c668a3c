"""`judge` suites end to end: real SmolLM2 generations, real DuckDB, judge over loopback HTTP."""

from __future__ import annotations

import json

import pytest

from harness.errors import UserError
from harness.results import summarize_run
from harness.runner import RunOptions, run_suite
from judges.base import Criterion, Subject
from judges.client import EndpointConfig, JudgeClient
from judges.pairwise import PairwiseJudge
from suites import load_suite
from tests.conftest import run_cli, write_suite
from tests.fake_openai import FakeOpenAI

DATA = "\n".join(
    json.dumps(r)
    for r in [
        {"id": "q1", "question": "What is the capital of France?", "answer": "Paris"},
        {"id": "q2", "question": "How many legs does a spider have?", "answer": "eight"},
        {"id": "q3", "question": "What colour is the sky on a clear day?", "answer": "blue"},
    ]
)


def suite_yaml(judge: str, extra: str = "") -> str:
    return f"""
name: judge-test
kind: judge
data: data.jsonl
prompt: "Answer briefly.\\nQuestion: {{{{ question }}}}"
reference: answer
generation: {{max_new_tokens: 12, stop: ["\\n"]}}
{extra}
judge:
{judge}
"""


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI() as srv:
        yield srv


def rubric_judge(server, **endpoint) -> str:
    ep = {"base_url": server.base_url, "model": "fake", "backoff_base": 0.01, **endpoint}
    return f"""  type: rubric
  criteria:
    - {{name: accuracy, description: "Correct?", max_points: 4}}
    - {{name: clarity, description: "Clear?", max_points: 3}}
  endpoint: {json.dumps(ep)}"""


def test_rubric_suite_stores_scores_and_reruns_for_free(server, store, smollm2, tmp_path):
    server.reset()
    suite = load_suite(write_suite(tmp_path, suite_yaml(rubric_judge(server)), DATA))
    out = run_suite(store, smollm2, suite, RunOptions())
    assert (out.n_examples, out.n_errors) == (3, 0)
    rows = store.db.execute(
        "SELECT metric, count(*), avg(value), count(error) FROM scores"
        " WHERE run_id = ? GROUP BY 1 ORDER BY 1",
        [out.run_id],
    ).fetchall()
    assert rows == [("accuracy", 3, 2.0, 0), ("clarity", 3, 2.0, 0), ("total", 3, 4.0, 0)]
    assert store.db.execute("SELECT count(*) FROM judgments WHERE error IS NULL").fetchone()[0] == 3
    # the stored spec says which judge produced the numbers, without any key
    spec = store.run_metrics(out.run_id)[0]["spec"]
    assert spec["name"] == "judge:rubric" and spec["args"]["endpoint"]["model"] == "fake"
    # the judged model's outputs are ordinary cached generations, shown to the judge fenced
    gens = store.db.execute("SELECT output FROM generations").fetchall()
    # requests arrive concurrently: take the one about q1, whatever its position
    sent = next(
        c for r in server.state.requests if "capital of France" in (c := r["body"]["messages"][1]["content"])
    )
    assert any(g[0] in sent for g in gens) and "Paris" in sent  # reference shown too
    # second run: every generation and judgment from the store, zero model calls
    again = run_suite(store, smollm2, suite, RunOptions())
    assert again.model_calls == 0 and len(server.state.requests) == 3
    _, summary = summarize_run(store, again.run_id)
    assert {m.metric: m.summary.n for m in summary} == {"accuracy": 3, "clarity": 3, "total": 3}


def test_failed_judgments_are_errors_not_zeros(server, store, smollm2, tmp_path):
    server.reset(default="garbage")
    suite = load_suite(write_suite(tmp_path, suite_yaml(rubric_judge(server, parse_retries=0)), DATA))
    out = run_suite(store, smollm2, suite, RunOptions(limit=2))
    assert out.n_errors == 2
    vals = store.db.execute(
        "SELECT value, error, detail FROM scores WHERE run_id = ? AND metric = 'total'", [out.run_id]
    ).fetchall()
    assert all(v is None and "rejected" in e and "seven" in json.loads(d)["raw"] for v, e, d in vals)
    _, summary = summarize_run(store, out.run_id)
    total = next(m for m in summary if m.metric == "total")
    assert total.summary.n == 0 and total.n_errors == 2


def test_pairwise_verdicts_count_only_when_consistent(server, store):
    """Both orders asked; a judge that always prefers the first answer (position bias) yields
    ties with consistency 0, a judge that prefers the right answer yields wins."""
    client = JudgeClient(
        EndpointConfig(base_url=server.base_url, model="fake", response_format="json_object")
    )
    judge = PairwiseJudge([Criterion(name="accuracy", description="Correct?", max_points=1)], client)
    subs = [
        Subject("a", "Capital of France?", "Paris", baseline="Lyon"),
        Subject("b", "Capital of Spain?", "Barcelona", baseline="Madrid"),
        Subject("c", "Capital of Italy?", "Rome", baseline="Rome"),
    ]
    right = {"Paris", "Madrid"}

    def prefers_right(body):
        text = body["messages"][1]["content"]
        first = text.split("Answer A")[1].split("\n")[2]  # the line after the opening fence
        return json.dumps({"winner": "A" if first in right else "B", "rationale": "x"})

    server.reset(reply=prefers_right)
    v = judge.judge(store, subs)
    assert [x.scores for x in v] == [
        {"win": 1.0, "consistency": 1.0},
        {"win": 0.0, "consistency": 1.0},
        {"win": 0.5, "consistency": 1.0},  # identical outputs: a tie without a call
    ]
    assert len(server.state.requests) == 4

    store.db.execute("DELETE FROM judgments")
    server.reset(reply=lambda body: json.dumps({"winner": "A", "rationale": "first is best"}))
    v = judge.judge(store, subs[:2])
    assert [x.scores for x in v] == [{"win": 0.5, "consistency": 0.0}] * 2
    assert v[0].detail["orders"] == {"baseline_first": "baseline", "candidate_first": "candidate"}


def test_pairwise_suite_on_candidate_against_baseline(server, store, smollm2, tmp_path):
    server.reset(reply=lambda body: json.dumps({"winner": "B", "rationale": "second"}))
    judge = rubric_judge(server).replace("type: rubric", "type: pairwise\n  baseline: smollm2?dtype=bfloat16")
    suite = load_suite(write_suite(tmp_path, suite_yaml(judge), DATA))
    out = run_suite(store, smollm2, suite, RunOptions())
    assert out.n_errors == 0
    rows = dict(
        store.db.execute(
            "SELECT example_id, value FROM scores WHERE run_id = ? AND metric = 'win'", [out.run_id]
        ).fetchall()
    )
    assert set(rows) == {"q1", "q2", "q3"} and set(rows.values()) <= {0.5}  # always-B is inconsistent
    # two models generated: the baseline's outputs are stored generations of another model id
    assert store.db.execute("SELECT count(DISTINCT model_id) FROM generations").fetchone()[0] == 2
    differing = store.db.execute(
        "SELECT count(*) FROM scores WHERE run_id = ? AND metric = 'consistency' AND value = 0", [out.run_id]
    ).fetchone()[0]
    assert len(server.state.requests) == 2 * differing


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        ("  type: pairwise", "needs 'baseline'"),
        ("  type: local\n  criteria: [{name: a, description: d, max_points: 10}]", "at most 9"),
        ("  type: rubric\n  criteria: [{name: total, description: d, max_points: 3}]", "reserved"),
        ("  type: rubric\n  endpoint: {max_concurency: 3}", "unknown key"),
        ("  type: rubric\n  endpoint: {model: x}", "needs an endpoint"),
        ("  type: local\n  question: '{{ nope }}'", "lacks a field judge.question uses"),
    ],
)
def test_bad_judge_config_is_a_located_error(tmp_path, monkeypatch, judge, message):
    monkeypatch.delenv("TUNEGATE_JUDGE_BASE_URL", raising=False)
    path = write_suite(tmp_path, suite_yaml(judge), DATA)
    with pytest.raises(UserError, match=message) as e:
        load_suite(path)
    assert e.value.line is not None


def test_cli_run_and_show(server, tmp_path):
    server.reset()
    path = write_suite(tmp_path, suite_yaml(rubric_judge(server)), DATA)
    db = str(tmp_path / "cli.duckdb")
    r = run_cli("run", "-m", "smollm2", "-s", str(path), "--db", db, "--limit", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "0 errors" in r.stdout
    run_id = r.stdout.split()[0]
    r = run_cli("show", run_id, "--db", db)
    assert r.returncode == 0 and "accuracy" in r.stdout and "total" in r.stdout
