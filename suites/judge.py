"""`judge` suites: the model answers each prompt (through the generation cache), then an LLM
judge scores the answers: a rubric, a pairwise comparison against a baseline, or a local
G-Eval judge. Judge scores land in `scores` like any metric, so compare, gate and report
work unchanged; every judge call is cached in `judgments`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from harness.config import Strict
from harness.errors import UserError
from harness.judging import JUDGES, field_owner, judge_type
from harness.suite import SelfDrivenSuite
from harness.templates import UserTemplate
from judges import types as _builtin_types  # noqa: F401  (registers the built-in judge types)
from judges.base import DEFAULT_CRITERIA, Criterion
from judges.client import EndpointConfig
from suites.base import SUITE_KINDS, BoundMetric, Example
from suites.task import PromptedConfig, TaskSuite

_OWNED_FIELDS = ("metric", "options")
"""`judge:` fields that belong to one judge type (its `takes`); plugins read theirs from `options`."""


class JudgeSpec(Strict):
    """Who judges and against what."""

    type: str = "rubric"
    """A registered judge type (harness.judging.JUDGES): rubric, pairwise, local, deepeval, or
    auto: a rubric judge on the endpoint when one is configured (base_url or
    $TUNEGATE_JUDGE_BASE_URL), otherwise the local G-Eval judge with the same criteria.
    deepeval: `metric` from deepeval.metrics on the endpoint (`pip install 'tunegate[deepeval]'`)."""
    metric: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """deepeval: the metric class in deepeval.metrics, e.g. GEval, AnswerRelevancyMetric."""
    options: dict[str, Any] = Field(default_factory=dict)
    """deepeval: the metric's keyword arguments (GEval: name, criteria or evaluation_steps,
    evaluation_params as strings: input, actual_output, expected_output, context)."""
    criteria: list[Criterion] = Field(default_factory=lambda: list(DEFAULT_CRITERIA), min_length=1)
    instructions: str | None = None
    """Extra guidance for the judge, appended to the rubric."""
    question: str | None = None
    """Jinja template for what the judge sees as the task (default: the suite's prompt)."""
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    local_model: str = "smollm2"
    """Model spec of the local judge."""
    baseline: str | None = None
    """Pairwise: model spec of the baseline whose answers the judged model is compared with."""
    sanity: str | None = None
    """JSONL of {question, reference, wrong} (relative to the suite file): judged once per judge
    to check it scores reference answers above deliberately wrong ones (stored as judge health)."""
    batch_size: int = Field(64, ge=1)
    """Examples judged (and stored) per batch; a crash loses at most one batch of judgments."""

    @field_validator("type")
    @classmethod
    def _registered(cls, v: str) -> str:
        try:
            JUDGES.get(v)
        except UserError as e:  # did-you-mean, located at judge.type by the suite loader
            raise ValueError(e.detail) from None
        return v

    @model_validator(mode="after")
    def _fits(self) -> JudgeSpec:
        jt = judge_type(self.type)
        for name in _OWNED_FIELDS:  # a field one type reads is refused with any other
            owner = field_owner(name)
            if getattr(self, name) and owner is not None and name not in jt.takes:
                raise ValueError(owner.takes[name])
        jt.check(self)
        names = [c.name for c in self.criteria]
        if len(set(names)) != len(names):
            raise ValueError("criterion names must be unique")
        return self

    def effective_type(self) -> str:
        """The judge type that judges: `auto` resolves to rubric or local."""
        return judge_type(self.type).resolve(self)


class JudgeConfig(PromptedConfig):
    """Prompts for the judged model, and the judge that scores its answers."""

    judge: JudgeSpec = Field(default_factory=JudgeSpec)


@SUITE_KINDS.register("judge")
class JudgeSuite(TaskSuite, SelfDrivenSuite):  # requests as a task; judged in its own loop
    """Examples and generation requests as a task suite; scoring by a judge (execute_run)."""

    kind = "judge"
    config_model = JudgeConfig
    config: JudgeConfig  # type: ignore[assignment]

    def bind_metrics(self) -> list[BoundMetric]:
        spec = self.config.judge
        jt = judge_type(spec.effective_type())
        if jt.uses_endpoint:  # fail before a run starts, not after its generations
            try:
                spec.endpoint.resolved_base_url()
            except UserError as e:
                raise self.doc.error(e.detail, ("judge", "endpoint")) from None
        if spec.sanity:  # read after the run: a path outside the suite's folder fails now
            self.local_path(spec.sanity, ("judge", "sanity"))
        base = {"name": f"judge:{jt.name}", "args": jt.measured_args(spec)}
        jt.prepare(spec)  # before any generation is paid for
        return [
            BoundMetric(m.name, None, base, "mean", m.higher_is_better, m.binary) for m in jt.metrics(spec)
        ]

    def load_examples(self) -> list[Example]:
        examples = super().load_examples()
        template = self.config.judge.question or self.config.prompt
        field = ("judge", "question") if self.config.judge.question else ("prompt",)
        self._question = UserTemplate(template, lambda msg: self.doc.error(msg, field), ".".join(field))
        path = self.data_path()
        for ex in examples:  # render once now so a missing field fails before any run

            def record_error(msg: str, n: int = ex.line) -> UserError:
                return UserError(msg, path=path, line=n)

            self._question.render(ex.record, record_error=record_error)
        return examples

    def judge_question(self, example: Example) -> str:
        """What the judge sees as the task for this example."""
        return self._question.render(example.record)

    def execute_run(self, store: Any, run_id: str, backend: Any, options: Any, progress: Any) -> None:
        """Generate what is missing (generation cache first), then judge in batches."""
        from suites.judge_run import run_judge_suite

        run_judge_suite(self, store, run_id, backend, options, progress)
