"""Judges against a real OpenAI-compatible server: llama.cpp (llama-cpp-python) serving the
bundled SmolLM2 GGUF on loopback. Few, short calls: each costs ~1-3 s on 2 CPU cores."""

from __future__ import annotations

from judges.base import Criterion, Subject
from judges.client import EndpointConfig, JudgeClient
from judges.pairwise import PairwiseJudge
from judges.rubric import RubricJudge
from tests.llama_server import LlamaServer

CRITERIA = [
    Criterion(name="accuracy", description="Is the answer factually correct?", max_points=4),
    Criterion(name="clarity", description="Is it clear and direct?", max_points=3),
]
SUBJECTS = [
    Subject("q1", "What is the capital of France?", "Paris", "Paris", baseline="Berlin"),
    Subject("q2", "How many legs does a spider have?", "Eight.", "eight", baseline="Six legs."),
    Subject("q3", "What is 2 + 2?", "4", "4", baseline="5"),
]


def client(llama: LlamaServer, **kw) -> JudgeClient:
    return JudgeClient(EndpointConfig(base_url=llama.base_url, model="smollm2", max_tokens=96, **kw))


def test_rubric_negotiates_down_to_llamacpp_json_and_scores_in_range(llama, store):
    judge = RubricJudge(CRITERIA, client(llama))
    verdicts = judge.judge(store, SUBJECTS)
    errors = [v.error for v in verdicts if v.error]
    assert not errors, errors
    for v in verdicts:
        assert 0 <= v.scores["accuracy"] <= 4 and 0 <= v.scores["clarity"] <= 3
        assert v.scores["total"] == v.scores["accuracy"] + v.scores["clarity"]
    # llama.cpp refuses json_schema (HTTP 500); its json_object+schema form is what worked
    assert judge.client.mode == "json_object"
    modes = store.db.execute("SELECT DISTINCT mode FROM judgments").fetchall()
    assert modes == [("json_object",)]
    assert judge.calls >= len(SUBJECTS) + 1  # at least one refused json_schema call
    again = RubricJudge(CRITERIA, client(llama))
    assert again.judge(store, SUBJECTS) == verdicts and again.calls == 0


def test_pairwise_both_orders(llama, store):
    judge = PairwiseJudge(CRITERIA, client(llama, response_format="json_object"))
    verdicts = judge.judge(store, SUBJECTS[:2])
    assert [v.error for v in verdicts] == [None, None]
    assert judge.calls == 4  # two orders per pair
    for v in verdicts:
        assert v.scores["win"] in (0.0, 0.5, 1.0) and v.scores["consistency"] in (0.0, 1.0)
        assert set(v.detail["orders"]) == {"baseline_first", "candidate_first"}
        if v.scores["consistency"] == 0.0:
            assert v.scores["win"] == 0.5  # an inconsistent verdict never counts as a win
