"""The built-in judge types (`judge: {type: …}`), registered in `harness.judging.JUDGES` on import.

Each is a small object saying what it takes from the suite's `judge:` section and how it builds
its judge; the judges themselves (prompts, parsing, caching) live in `judges.rubric`,
`judges.pairwise`, `judges.local` and `judges.deepeval_judge`, imported only when one is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.judging import JUDGES, Judge, MetricInfo, Subject, judge_type

if TYPE_CHECKING:
    from harness.store import Store


def endpoint_record(endpoint: Any) -> dict[str, Any]:
    """The endpoint as configured, minus nothing secret: the key stays in its env var."""
    return {
        "base_url": endpoint.base_url or os.environ.get("TUNEGATE_JUDGE_BASE_URL"),
        "model": endpoint.resolved_model(),
        "max_tokens": endpoint.max_tokens,
        "temperature": endpoint.temperature,
    }


def _client(settings: Any) -> Any:
    from judges.client import JudgeClient

    return JudgeClient(settings.endpoint)


@JUDGES.register("rubric")
class RubricType:
    """Points per criterion and their total, one endpoint call per answer."""

    name = "rubric"
    takes: dict[str, str] = {}
    uses_endpoint = True
    health_metrics: tuple[str, ...] = ("total",)

    def resolve(self, settings: Any) -> str:
        return self.name

    def check(self, settings: Any) -> None:
        return None

    def metrics(self, settings: Any) -> list[MetricInfo]:
        return [MetricInfo(c.name) for c in settings.criteria] + [MetricInfo("total")]

    def measured_args(self, settings: Any) -> dict[str, Any]:
        return {
            "criteria": [c.model_dump() for c in settings.criteria],
            "instructions": settings.instructions,
            "endpoint": endpoint_record(settings.endpoint),
        }

    def baseline(self, settings: Any) -> str | None:
        return None

    def prepare(self, settings: Any) -> None:
        return None

    def build(self, settings: Any, backend: Any) -> Judge:
        from judges.rubric import RubricJudge

        return RubricJudge(settings.criteria, _client(settings), settings.instructions)

    def sanity(self, store: Store, judge: Judge, items: Sequence[dict[str, str]]) -> dict[str, Any]:
        """Score the reference and the wrong answer of each item: separation is the mean gap in the
        main score (total, else the first score)."""
        import numpy as np

        from harness.store.judge_health import SANITY_MIN_GAP

        subs = [Subject(f"sanity-{i}-ref", it["question"], it["reference"], it["reference"], None)
                for i, it in enumerate(items)]  # fmt: skip
        subs += [Subject(f"sanity-{i}-wrong", it["question"], it["wrong"], it["reference"], None)
                 for i, it in enumerate(items)]  # fmt: skip
        verdicts = judge.judge(store, subs)
        metric = "total" if any(v.scores and "total" in v.scores for v in verdicts) else None
        pairs = []
        for i in range(len(items)):
            a, b = verdicts[i], verdicts[len(items) + i]
            if a.scores is None or b.scores is None:
                continue
            key = metric or next(iter(a.scores))
            pairs.append((float(a.scores[key]), float(b.scores[key])))
        if not pairs:
            return {"n": len(items), "errors": len(items), "separation": None}
        good, bad = np.asarray(pairs).T
        # "tells apart": most references above their wrong answer, by at least a tenth of the scale
        # (harness.store.judge_health.sanity_problem holds the gate's default to the same)
        scale = float(sum(c.max_points for c in getattr(judge, "criteria", []))) or 1.0
        sep, higher = float(good.mean() - bad.mean()), int(np.sum(good > bad))
        return {
            "n": len(items),
            "errors": len(items) - len(pairs),
            "reference_mean": float(good.mean()),
            "wrong_mean": float(bad.mean()),
            "separation": sep,
            "reference_higher": higher,
            "scale": scale,
            "tells_apart": bool(higher > len(pairs) / 2 and sep >= SANITY_MIN_GAP * scale),
        }


@JUDGES.register("pairwise")
class PairwiseType(RubricType):
    """The model's answer against a baseline model's, asked in both orders."""

    name = "pairwise"
    health_metrics = ("win", "total")

    def check(self, settings: Any) -> None:
        if not settings.baseline:
            raise ValueError("a pairwise judge needs 'baseline' (the model to compare against)")

    def metrics(self, settings: Any) -> list[MetricInfo]:
        return [MetricInfo("win"), MetricInfo("consistency", binary=True)]

    def measured_args(self, settings: Any) -> dict[str, Any]:
        return super().measured_args(settings) | {"baseline": settings.baseline}

    def baseline(self, settings: Any) -> str | None:
        return str(settings.baseline)

    def build(self, settings: Any, backend: Any) -> Judge:
        from judges.pairwise import PairwiseJudge

        return PairwiseJudge(settings.criteria, _client(settings), settings.instructions)

    def sanity(self, store: Store, judge: Judge, items: Sequence[dict[str, str]]) -> dict[str, Any]:
        """Compare each reference (as the answer) with its wrong answer (as the baseline) directly:
        separation is 2 × the reference's win rate - 1."""
        import numpy as np

        from harness.store.judge_health import SANITY_MIN_GAP

        subs = [Subject(f"sanity-{i}", it["question"], it["reference"], it["reference"], it["wrong"])
                for i, it in enumerate(items)]  # fmt: skip
        verdicts = judge.judge(store, subs)
        wins = [v.scores["win"] for v in verdicts if v.scores is not None]
        if not wins:
            return {"n": len(items), "errors": len(items), "separation": None}
        rate = float(np.mean(wins))
        return {"n": len(items), "errors": len(items) - len(wins), "reference_win_rate": rate,
                "separation": 2 * rate - 1,
                "tells_apart": bool(rate > 0.5 and 2 * rate - 1 >= 2 * SANITY_MIN_GAP)}  # fmt: skip


@JUDGES.register("local")
class LocalType(RubricType):
    """G-Eval on a local model's next-token distribution: no server."""

    name = "local"
    uses_endpoint = False

    def check(self, settings: Any) -> None:
        if any(c.max_points > 9 for c in settings.criteria):
            raise ValueError("the local judge reads one digit: max_points must be at most 9")

    def measured_args(self, settings: Any) -> dict[str, Any]:
        return {
            "criteria": [c.model_dump() for c in settings.criteria],
            "instructions": settings.instructions,
            "model": settings.local_model,
        }

    def build(self, settings: Any, backend: Any) -> Judge:
        from judges.local import LocalJudge, local_model

        return LocalJudge(
            settings.criteria, local_model(settings.local_model, backend), settings.instructions
        )


@JUDGES.register("auto")
class AutoType(LocalType):
    """A rubric judge on the endpoint when one is configured, else the local judge."""

    name = "auto"

    def resolve(self, settings: Any) -> str:
        has_endpoint = settings.endpoint.base_url or os.environ.get("TUNEGATE_JUDGE_BASE_URL")
        return "rubric" if has_endpoint else "local"

    # check: the local judge's (it may be the one that judges); the rest is the resolved type's
    def metrics(self, settings: Any) -> list[MetricInfo]:
        return judge_type(self.resolve(settings)).metrics(settings)

    def measured_args(self, settings: Any) -> dict[str, Any]:
        return judge_type(self.resolve(settings)).measured_args(settings)

    def build(self, settings: Any, backend: Any) -> Judge:
        return judge_type(self.resolve(settings)).build(settings, backend)


@JUDGES.register("deepeval")
class DeepEvalType(RubricType):
    """A metric class from deepeval.metrics, run on our judge client."""

    name = "deepeval"
    takes = {
        "metric": "'metric' names a deepeval metric: it goes with type: deepeval, and only there",
        "options": "'options' are a deepeval metric's arguments: only with type: deepeval",
    }

    def check(self, settings: Any) -> None:
        if settings.metric is None:
            raise ValueError(self.takes["metric"])

    def metrics(self, settings: Any) -> list[MetricInfo]:
        from judges.deepeval_judge import score_name

        return [MetricInfo(score_name(settings.metric or "", settings.options))]

    def measured_args(self, settings: Any) -> dict[str, Any]:
        # deepeval's metric has its own criteria and instructions
        return {"endpoint": endpoint_record(settings.endpoint), "metric": settings.metric,
                "options": settings.options}  # fmt: skip

    def prepare(self, settings: Any) -> None:
        from harness.extras import require

        require("deepeval")

    def build(self, settings: Any, backend: Any) -> Judge:
        from judges.deepeval_judge import DeepEvalJudge

        return DeepEvalJudge(settings.metric, settings.options, _client(settings))
