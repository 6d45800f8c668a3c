"""Judge types are registered units: a new one is used from suite YAML like the built-ins, and an
unknown one is a located error with a did-you-mean."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from harness.errors import UserError
from harness.judging import JUDGES, MetricInfo, Subject, Verdict
from harness.runner import RunOptions, run_suite
from harness.store.judge_health import get_health
from judges.types import RubricType
from suites import load_suite
from tests.conftest import write_suite
from tests.test_judges_suite import DATA, suite_yaml


@pytest.fixture()
def registry():
    snap = JUDGES.snapshot()
    yield JUDGES
    JUDGES.restore(snap)


class LengthJudge:
    """Scores an answer by its length, up to `max_chars`; refuses to judge example q2."""

    kind = "length"
    identity = "length@test"

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.calls = 0

    def metrics(self) -> list[MetricInfo]:
        return [MetricInfo("length")]

    def spec(self) -> dict[str, Any]:
        return {"judge": self.kind, "max_chars": self.max_chars}

    def judge(self, store: Any, subjects: Sequence[Subject]) -> list[Verdict]:
        self.calls += len(subjects)
        return [
            Verdict(None, "the length judge declines q2")
            if s.example_id == "q2"
            else Verdict(
                {"length": min(len(s.output), self.max_chars) / self.max_chars}, None, {"n": len(s.output)}
            )
            for s in subjects
        ]


def _register_length(registry: Any) -> None:
    @registry.register("length")
    class LengthType(RubricType):
        name = "length"
        takes = {"options": "'options' are the length judge's: only with type: length"}
        uses_endpoint = False

        def check(self, settings: Any) -> None:
            if "max_chars" not in settings.options:
                raise ValueError("the length judge needs options.max_chars")

        def metrics(self, settings: Any) -> list[MetricInfo]:
            return [MetricInfo("length")]

        def measured_args(self, settings: Any) -> dict[str, Any]:
            return {"max_chars": settings.options["max_chars"]}

        def build(self, settings: Any, backend: Any) -> LengthJudge:
            return LengthJudge(int(settings.options["max_chars"]))


def test_a_registered_judge_type_scores_from_suite_yaml(registry, store, smollm2, tmp_path):
    _register_length(registry)
    suite = load_suite(write_suite(tmp_path, suite_yaml("  type: length\n  options: {max_chars: 40}"), DATA))
    assert [(m.name, m.spec) for m in suite.metrics] == [
        ("length", {"name": "judge:length", "args": {"max_chars": 40}})
    ]
    out = run_suite(store, smollm2, suite, RunOptions())
    assert (out.n_examples, out.n_errors) == (3, 1)
    rows = store.db.execute(
        "SELECT s.example_id, s.value, s.error, g.output FROM scores s JOIN run_examples r"
        " ON r.run_id = s.run_id AND r.example_id = s.example_id"
        " JOIN generations g ON g.cache_key = r.cache_key"
        " WHERE s.run_id = ? ORDER BY 1",
        [out.run_id],
    ).fetchall()
    assert [r[0] for r in rows] == ["q1", "q2", "q3"]
    for eid, value, error, output in rows:
        if eid == "q2":  # a declined verdict is an error row, never a 0
            assert value is None and error == "the length judge declines q2"
        else:
            assert error is None and value == pytest.approx(min(len(output), 40) / 40)
    # the built-ins still refuse the field the new type owns, and it refuses bad options
    with pytest.raises(UserError, match="deepeval metric's arguments|only with type"):
        load_suite(write_suite(tmp_path, suite_yaml("  type: local\n  options: {max_chars: 4}"), DATA))
    with pytest.raises(UserError, match="needs options.max_chars") as e:
        load_suite(write_suite(tmp_path, suite_yaml("  type: length\n  options: {}"), DATA))
    assert e.value.line is not None


class SizeJudge(LengthJudge):
    """Two scores per answer: its length (first) and its number of words."""

    kind = "size"

    def metrics(self) -> list[MetricInfo]:
        return [MetricInfo("length"), MetricInfo("words")]

    def judge(self, store: Any, subjects: Sequence[Subject]) -> list[Verdict]:
        self.calls += len(subjects)
        return [
            Verdict(
                {
                    "length": min(len(s.output), self.max_chars) / self.max_chars,
                    "words": len(s.output.split()),
                }
            )
            for s in subjects
        ]


SANITY = "".join(
    json.dumps({"question": q, "reference": r, "wrong": w}) + "\n"
    for q, r, w in [
        ("What is the capital of France?", "The capital of France is Paris", "Rome"),
        ("How many legs does a spider have?", "A spider has eight legs", "six"),
    ]
)


def test_a_registered_judge_type_brings_its_own_health_facts(registry, store, smollm2, tmp_path):
    """Judge health asks the judge type which score matters and how to judge the sanity set: a
    type registered here is read the same way as rubric and pairwise, with no branch on its kind."""

    @registry.register("size")
    class SizeType(RubricType):
        name = "size"
        takes = {"options": "'options' are the size judge's: only with type: size"}
        uses_endpoint = False
        health_metrics = ("words",)  # not the run's first metric, nor a rubric's total

        def metrics(self, settings: Any) -> list[MetricInfo]:
            return [MetricInfo("length"), MetricInfo("words")]

        def measured_args(self, settings: Any) -> dict[str, Any]:
            return {"max_chars": settings.options["max_chars"]}

        def build(self, settings: Any, backend: Any) -> SizeJudge:
            return SizeJudge(int(settings.options["max_chars"]))

        def sanity(self, store: Any, judge: Any, items: Sequence[dict[str, str]]) -> dict[str, Any]:
            # the reference should be the longer answer, in words
            subs = [Subject(f"s{i}-{side}", it["question"], it[side]) for i, it in enumerate(items)
                    for side in ("reference", "wrong")]  # fmt: skip
            words = [v.scores["words"] for v in judge.judge(store, subs) if v.scores]
            gaps = [a - b for a, b in zip(words[::2], words[1::2])]
            return {"n": len(items), "errors": 0, "separation": sum(gaps) / len(gaps), "by": "words",
                    "tells_apart": all(g > 0 for g in gaps)}  # fmt: skip

    (tmp_path / "sanity.jsonl").write_text(SANITY)
    judge = "  type: size\n  options: {max_chars: 40}\n  sanity: sanity.jsonl"
    suite = load_suite(write_suite(tmp_path, suite_yaml(judge), DATA))
    out = run_suite(store, smollm2, suite, RunOptions())
    h = get_health(store, out.run_id)
    assert h is not None and h["judge"] == "size" and h["detail"] == {"metric": "words"}
    words = [v for _, v, _, err, _ in store.scores(out.run_id, "words") if err is None]
    assert h["n"] == 3 and h["score_sd"] == pytest.approx(float(np.std(words, ddof=1)))
    # 6 - 1 and 5 - 1 words: the type's own sanity, stored as it returned it
    assert h["sanity"] == {"n": 2, "errors": 0, "separation": 4.5, "by": "words", "tells_apart": True}


def test_unknown_judge_type_is_located_with_did_you_mean(tmp_path):
    path = write_suite(tmp_path, suite_yaml("  type: rubrc"), DATA)
    with pytest.raises(UserError, match="Did you mean 'rubric'") as e:
        load_suite(path)
    lines = path.read_text().splitlines()
    assert e.value.field == "judge.type" and lines[e.value.line - 1].strip() == "type: rubrc"
    assert {"rubric", "pairwise", "local", "auto", "deepeval"} <= set(JUDGES.names())
