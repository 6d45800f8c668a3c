"""`judge: {type: deepeval, metric: GEval, options: {...}}`: a deepeval metric as a judge suite.

Any LLM-judged metric class in `deepeval.metrics` (GEval, AnswerRelevancyMetric, …) is built
with `options` as its keyword arguments and our judge client as its model
(`judges/deepeval_adapter.py`): every call it makes goes through our transport and is cached in
`judgments`, so a re-run makes none. Its `score` (0–1) is stored under one metric name, its
`reason` in the score's detail; a metric that raises is an error row, never a 0.

deepeval is optional and clashes with our test environment: `pip install 'tunegate[deepeval]'`
in an environment of its own (the tests build one, tests/envs.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from harness.store import Store
from judges.base import MetricInfo, Subject, Verdict

# GEval's evaluation_params as YAML strings → deepeval's enum member names
_PARAMS = {"input", "actual_output", "expected_output", "context", "retrieval_context"}


def score_name(metric: str, options: dict[str, Any]) -> str:
    """The stored metric name: GEval's `name` option, else the class name without 'Metric'."""
    raw = str(options.get("name") or re.sub(r"Metric$", "", metric))
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw)
    return re.sub(r"[^a-z0-9_]+", "_", snake.lower()).strip("_") or "score"


class DeepEvalJudge:
    """A deepeval metric run per subject on our client (sequentially: deepeval's own async path
    would run its own event loop around ours)."""

    kind = "deepeval"

    def __init__(self, metric: str, options: dict[str, Any], client: Any) -> None:
        from judges.deepeval_adapter import import_deepeval

        deepeval = import_deepeval()
        import deepeval.metrics as metrics

        self.metric = metric
        self.options = dict(options)
        self.client = client
        self.identity: str = client.identity
        self.version = getattr(deepeval, "__version__", None)
        self.name = score_name(metric, options)
        cls = getattr(metrics, metric, None)
        if not isinstance(cls, type):
            from harness.errors import UserError

            raise UserError(f"deepeval.metrics has no metric class '{metric}'", field="judge.metric")
        self._cls = cls
        self._model: Any = None

    @property
    def calls(self) -> int:
        return 0 if self._model is None else int(self._model.calls)

    def metrics(self) -> list[MetricInfo]:
        return [MetricInfo(self.name)]

    def spec(self) -> dict[str, Any]:
        return {
            "judge": self.kind,
            "model": self.identity,
            "metric": self.metric,
            "options": self.options,
            "deepeval": self.version,
            "max_tokens": self.client.config.max_tokens,
            "temperature": self.client.config.temperature,
        }

    def _build(self) -> Any:
        kwargs = dict(self.options)
        if "evaluation_params" in kwargs:
            from deepeval.test_case import SingleTurnParams

            params = []
            for p in kwargs["evaluation_params"]:
                if str(p).lower() not in _PARAMS:
                    from harness.errors import UserError

                    raise UserError(
                        f"unknown evaluation param '{p}': expected one of {', '.join(sorted(_PARAMS))}",
                        field="judge.options.evaluation_params",
                    )
                params.append(SingleTurnParams[str(p).upper()])
            kwargs["evaluation_params"] = params
        kwargs.setdefault("async_mode", False)
        return self._cls(model=self._model, **kwargs)

    def judge(self, store: Store, subjects: Sequence[Subject]) -> list[Verdict]:
        from deepeval.test_case import LLMTestCase

        from judges.deepeval_adapter import TunegateDeepEvalModel

        if self._model is None or self._model.store is not store:
            calls = self.calls
            self._model = TunegateDeepEvalModel(self.client, store=store)
            self._model.calls = calls
        out = []
        for s in subjects:
            case = LLMTestCase(input=s.question, actual_output=s.output, expected_output=s.reference)
            try:
                metric = self._build()  # metrics keep per-case state: one object per case
                metric.measure(case, _show_indicator=False)
            except Exception as e:  # a failed judge call or unparseable reply: an error, never a 0
                from harness.errors import UserError

                if isinstance(e, UserError):
                    raise
                out.append(Verdict(None, f"deepeval {self.metric}: {e}"))
                continue
            if metric.score is None:
                out.append(Verdict(None, f"deepeval {self.metric} returned no score"))
                continue
            out.append(Verdict({self.name: float(metric.score)}, detail={"reason": metric.reason}))
        return out
