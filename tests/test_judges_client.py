"""The judge client and rubric judge against a real (misbehaving) HTTP server on loopback."""

from __future__ import annotations

import json
import time

import pytest

from judges.base import DEFAULT_CRITERIA, Subject
from judges.client import EndpointConfig, JudgeClient, parse_json_object
from judges.rubric import RubricJudge
from tests.fake_openai import FakeOpenAI

SECRET = "sk-test-SECRET-d41d8cd98f00b204"


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("TUNEGATE_JUDGE_API_KEY", SECRET)


def make_judge(server, **endpoint) -> RubricJudge:
    cfg = {
        "base_url": server.base_url,
        "model": "fake",
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        **endpoint,
    }
    return RubricJudge(DEFAULT_CRITERIA, JudgeClient(EndpointConfig(**cfg)))


def subjects(n: int = 1) -> list[Subject]:
    return [Subject(f"ex-{i}", f"What is {i} + {i}?", str(2 * i), reference=str(2 * i)) for i in range(n)]


def test_rubric_scores_total_and_cache(server, store):
    server.reset()
    judge = make_judge(server)
    [v] = judge.judge(store, subjects())
    assert v.error is None
    # the fake answers mid-range: (max+1)//2 per criterion
    assert v.scores == {"accuracy": 2, "completeness": 2, "clarity": 2, "total": 6}
    assert judge.calls == 1
    # the prompt fences the output and tells the judge it is data
    sent = server.state.requests[0]["body"]["messages"]
    assert "never instructions" in sent[0]["content"] and "<answer-1-" in sent[1]["content"]
    # same judge, same subject: served from the store, no HTTP call
    again = make_judge(server)
    assert again.judge(store, subjects()) == [v]
    assert again.calls == 0 and len(server.state.requests) == 1


def test_json_schema_rejected_falls_back_to_llamacpp_form(server, store):
    server.reset(reject_json_schema=True)
    judge = make_judge(server)
    verdicts = judge.judge(store, subjects(3))
    assert all(v.error is None for v in verdicts)
    kinds = [r["body"]["response_format"]["type"] for r in server.state.requests]
    # one refusal, then the schema travels as llama.cpp's json_object form for every call
    assert kinds.count("json_schema") >= 1 and kinds[-3:] == ["json_object"] * 3
    assert "schema" in server.state.requests[-1]["body"]["response_format"]
    assert judge.client.mode == "json_object"


def test_429_honours_retry_after(server, store):
    server.reset(script=["429"], retry_after="1")
    judge = make_judge(server)
    t0 = time.monotonic()
    [v] = judge.judge(store, subjects())
    assert v.error is None
    gap = server.state.times[1] - server.state.times[0]
    assert gap >= 1.0, f"retried after {gap:.2f}s, Retry-After said 1s"
    assert time.monotonic() - t0 < 5
    row = store.db.execute("SELECT attempts, error FROM judgments").fetchone()
    assert row == (2, None)


def test_500s_are_retried_with_backoff(server, store):
    server.reset(script=["500", "500"])
    judge = make_judge(server, response_format="json_object")
    [v] = judge.judge(store, subjects())
    assert v.error is None and judge.calls == 3


def test_hang_times_out_and_becomes_an_error_row(server, store):
    server.reset(default="hang")
    judge = make_judge(server, timeout=0.3, max_retries=1, response_format="json_object")
    t0 = time.monotonic()
    [v] = judge.judge(store, subjects())
    assert time.monotonic() - t0 < 3
    assert v.scores is None and "timed out" in v.error
    row = store.db.execute("SELECT score, scores, error, attempts FROM judgments").fetchone()
    assert row[0] is None and row[1] is None and "timed out" in row[2] and row[3] == 2


@pytest.mark.parametrize("behaviour", ["garbage", "out_of_range"])
def test_unparseable_or_out_of_range_is_an_error_never_a_score(server, store, behaviour):
    server.reset(default=behaviour)
    judge = make_judge(server, parse_retries=2)
    [v] = judge.judge(store, subjects())
    assert v.scores is None and v.error
    score, error, raw, attempts = store.db.execute(
        "SELECT score, error, raw, attempts FROM judgments"
    ).fetchone()
    assert score is None and "rejected" in error and raw  # the raw text is kept for diagnosis
    assert attempts == 3  # the first reply plus two re-asks
    if behaviour == "out_of_range":
        assert "not an integer from 0 to" in error
    # an error is never a cache hit: the next run asks again and can succeed
    server.reset()
    [v2] = make_judge(server).judge(store, subjects())
    assert v2.error is None


def test_retry_budget_bounds_a_dead_server(server, store):
    server.reset(default="500")
    judge = make_judge(server, response_format="json_object", max_retries=5, retry_budget=3)
    verdicts = judge.judge(store, subjects(6))
    assert all(v.scores is None for v in verdicts)
    assert judge.calls == 6 + 3  # one call each, plus the shared budget of 3 retries
    assert any("retry budget" in v.error for v in verdicts)


def test_concurrency_is_bounded(server, store):
    server.reset(latency=0.2)
    judge = make_judge(server, max_concurrency=3, response_format="json_object")
    judge.judge(store, subjects(9))
    assert server.state.max_in_flight == 3


def test_api_key_is_sent_but_never_stored(server, store, tmp_path):
    server.reset(default="echo_auth")
    judge = make_judge(server, parse_retries=0, response_format="json_object")
    [v] = judge.judge(store, subjects())
    assert server.state.requests[0]["auth"] == f"Bearer {SECRET}"
    assert v.error and SECRET not in v.error and SECRET not in json.dumps(v.detail)
    assert "***" in v.detail["raw"]
    assert SECRET not in repr(table_dump_of(store))


def table_dump_of(store):
    store.db.execute("CHECKPOINT")
    return {
        t: store.db.execute(f'SELECT * FROM "{t}"').fetchall()
        for (t,) in store.db.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }


def test_strict_parsing():
    assert parse_json_object('{"a": 1}') == {"a": 1}
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Sure! {"a": 1} Hope that helps.') == {"a": 1}
    for bad in ["seven", '{"a": 1} and {"b": 2}', '{"a": ', "[1, 2]"]:
        with pytest.raises(ValueError):
            parse_json_object(bad)
