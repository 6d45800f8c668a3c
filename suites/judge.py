"""`judge` suites: the model answers each prompt (through the generation cache), then an LLM
judge scores the answers: a rubric, a pairwise comparison against a baseline, or a local
G-Eval judge. Judge scores land in `scores` like any metric, so compare, gate and report
work unchanged; every judge call is cached in `judgments`.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, model_validator

from harness.config import Strict
from harness.errors import UserError
from harness.store import GenerationRow, ScoreRow
from harness.templates import UserTemplate
from judges.base import DEFAULT_CRITERIA, Criterion
from judges.client import EndpointConfig
from suites.base import SUITE_KINDS, BoundMetric, Example
from suites.task import PromptedConfig, TaskSuite


class JudgeSpec(Strict):
    """Who judges and against what."""

    type: Literal["rubric", "pairwise", "local", "auto", "deepeval"] = "rubric"
    """auto: a rubric judge on the endpoint when one is configured (base_url or
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

    @model_validator(mode="after")
    def _fits(self) -> JudgeSpec:
        if (self.type == "deepeval") != (self.metric is not None):
            raise ValueError("'metric' names a deepeval metric: it goes with type: deepeval, and only there")
        if self.options and self.type != "deepeval":
            raise ValueError("'options' are a deepeval metric's arguments: only with type: deepeval")
        if self.type == "pairwise" and not self.baseline:
            raise ValueError("a pairwise judge needs 'baseline' (the model to compare against)")
        if self.type in ("local", "auto") and any(c.max_points > 9 for c in self.criteria):
            raise ValueError("the local judge reads one digit: max_points must be at most 9")
        names = [c.name for c in self.criteria]
        if len(set(names)) != len(names):
            raise ValueError("criterion names must be unique")
        return self

    def effective_type(self) -> str:
        if self.type != "auto":
            return self.type
        has_endpoint = self.endpoint.base_url or os.environ.get("TUNEGATE_JUDGE_BASE_URL")
        return "rubric" if has_endpoint else "local"


class JudgeConfig(PromptedConfig):
    """Prompts for the judged model, and the judge that scores its answers."""

    judge: JudgeSpec = Field(default_factory=JudgeSpec)


@SUITE_KINDS.register("judge")
class JudgeSuite(TaskSuite):
    """Examples and generation requests as a task suite; scoring by a judge (execute_run)."""

    kind = "judge"
    config_model = JudgeConfig
    config: JudgeConfig  # type: ignore[assignment]

    def bind_metrics(self) -> list[BoundMetric]:
        spec = self.config.judge
        kind = spec.effective_type()
        if kind != "local":  # fail before a run starts, not after its generations
            try:
                spec.endpoint.resolved_base_url()
            except UserError as e:
                raise self.doc.error(e.detail, ("judge", "endpoint")) from None
        if spec.sanity:  # read after the run: a path outside the suite's folder fails now
            self.local_path(spec.sanity, ("judge", "sanity"))
        base = {"name": f"judge:{kind}", "args": self._judge_args(kind)}
        if kind == "deepeval":
            from harness.extras import require
            from judges.deepeval_judge import score_name

            require("deepeval")  # before any generation is paid for

            return [BoundMetric(score_name(spec.metric or "", spec.options), None, base, "mean", True, False)]
        if kind == "pairwise":
            return [
                BoundMetric("win", None, base, "mean", True, False),
                BoundMetric("consistency", None, base, "mean", True, True),
            ]
        bound = [BoundMetric(c.name, None, base, "mean", True, False) for c in spec.criteria]
        return bound + [BoundMetric("total", None, base, "mean", True, False)]

    def _judge_args(self, kind: str) -> dict[str, Any]:
        spec = self.config.judge
        args: dict[str, Any] = {
            "criteria": [c.model_dump() for c in spec.criteria],
            "instructions": spec.instructions,
        }
        if kind == "local":
            args["model"] = spec.local_model
        else:  # the endpoint as configured, minus nothing secret: the key stays in its env var
            ep = spec.endpoint
            args["endpoint"] = {
                "base_url": ep.base_url or os.environ.get("TUNEGATE_JUDGE_BASE_URL"),
                "model": ep.resolved_model(),
                "max_tokens": ep.max_tokens,
                "temperature": ep.temperature,
            }
        if kind == "pairwise":
            args["baseline"] = spec.baseline
        if kind == "deepeval":
            args |= {"metric": spec.metric, "options": spec.options}
            del args["criteria"], args["instructions"]  # deepeval's metric has its own
        return args

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

    def score(self, example: Example, response: GenerationRow) -> list[ScoreRow]:
        raise NotImplementedError("judge suites score in execute_run (judging is batched and concurrent)")

    def execute_run(self, store: Any, run_id: str, backend: Any, options: Any, progress: Any) -> None:
        """Generate what is missing (generation cache first), then judge in batches."""
        from suites.judge_run import run_judge_suite

        run_judge_suite(self, store, run_id, backend, options, progress)
