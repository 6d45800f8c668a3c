"""Judge types are registered units: a new one is used from suite YAML like the built-ins, and an
unknown one is a located error with a did-you-mean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from harness.errors import UserError
from harness.judging import JUDGES, MetricInfo, Subject, Verdict
from harness.runner import RunOptions, run_suite
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


def test_unknown_judge_type_is_located_with_did_you_mean(tmp_path):
    path = write_suite(tmp_path, suite_yaml("  type: rubrc"), DATA)
    with pytest.raises(UserError, match="Did you mean 'rubric'") as e:
        load_suite(path)
    lines = path.read_text().splitlines()
    assert e.value.field == "judge.type" and lines[e.value.line - 1].strip() == "type: rubrc"
    assert {"rubric", "pairwise", "local", "auto", "deepeval"} <= set(JUDGES.names())
