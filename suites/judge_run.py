"""Running a `judge` suite: generations through the normal cache, then judging in batches.

Generation keys and rows are the runner's own (plan_items + the backend's batched generate),
so a judge suite shares cached outputs with a task suite that renders the same prompt.
Each judged batch is one transaction of run_examples and scores; judgments are stored (and
cached) just before it, so a crash loses no paid-for judge call.
"""

from __future__ import annotations

from typing import Any

from harness.runner.execute import generations as generate
from harness.store import GenerationRow, ScoreRow, Store
from harness.suite import Example
from judges.base import Subject, Verdict

_LOCAL_JUDGES: dict[str, Any] = {}


def run_judge_suite(suite: Any, store: Store, run_id: str, backend: Any, options: Any, progress: Any) -> None:
    limit = store.get_run(run_id).config.get("limit")  # the run's own limit, also on --resume
    examples = suite.examples[:limit] if limit else suite.examples
    # a resume retries failed examples unless --keep-errors (their rows are replaced)
    done = store.done_example_ids(run_id, include_errors=options.keep_errors)
    todo = [ex for ex in examples if ex.id not in done]
    if not todo:
        return
    spec = suite.config.judge
    judge = build_judge(suite, backend)
    outputs = generate(store, backend, suite, todo, options)
    base_outputs = None
    if judge.kind == "pairwise":
        base = _baseline_backend(spec.baseline, backend)
        before = sum(base.calls.values()) if base is not backend else 0
        base_outputs = generate(store, base, suite, todo, options)
        if base is not backend:
            backend.calls["baseline"] = backend.calls.get("baseline", 0) + sum(base.calls.values()) - before
    calls_before = judge.calls
    try:
        for start in range(0, len(todo), spec.batch_size):
            chunk = todo[start : start + spec.batch_size]
            _judge_batch(suite, store, run_id, judge, chunk, outputs, base_outputs)
            progress(len(chunk))
    finally:
        # judge calls are model calls too: the run's summary must show 0 on a warm re-run
        backend.calls["judge"] = backend.calls.get("judge", 0) + judge.calls - calls_before
    from judges.health import record as record_health

    record_health(store, run_id, suite, judge)  # parse failures, consistency, spread, sanity (#15)


def _judge_batch(
    suite: Any,
    store: Store,
    run_id: str,
    judge: Any,
    chunk: list[Example],
    outputs: dict[str, tuple[str, GenerationRow, bool]],
    base_outputs: dict[str, tuple[str, GenerationRow, bool]] | None,
) -> None:
    subjects, failed = [], {}
    for ex in chunk:
        _, gen, _ = outputs[ex.id]
        base = base_outputs[ex.id][1] if base_outputs else None
        if gen.error:
            failed[ex.id] = f"generation failed: {gen.error}"
        elif base is not None and base.error:
            failed[ex.id] = f"baseline generation failed: {base.error}"
        else:
            subjects.append(
                Subject(
                    ex.id,
                    suite.judge_question(ex),
                    gen.output or "",
                    " | ".join(ex.references) or None,
                    None if base is None else base.output or "",
                )
            )
    verdicts = dict(zip((s.example_id for s in subjects), judge.judge(store, subjects)))
    items, scores = [], []
    for ex in chunk:
        key, _, cached = outputs[ex.id]
        v = verdicts.get(ex.id) or Verdict(None, failed[ex.id])
        items.append((ex.id, key, cached, v.error))
        scores += _score_rows(suite, ex, v)
    store.write_batch(run_id, [], items, scores, replace=True)


def _score_rows(suite: Any, ex: Example, v: Verdict) -> list[ScoreRow]:
    if v.scores is None:  # never a 0: the metric leaves this example out and counts an error
        return [
            ScoreRow(ex.id, m.name, None, 1.0, v.error or "no verdict", v.detail or None)
            for m in suite.metrics
        ]
    return [ScoreRow(ex.id, m.name, float(v.scores[m.name]), 1.0, None, v.detail) for m in suite.metrics]


def build_judge(suite: Any, backend: Any) -> Any:
    spec = suite.config.judge
    kind = spec.effective_type()
    if kind == "local":
        from judges.local import LocalJudge

        return LocalJudge(spec.criteria, local_model(spec.local_model, backend), spec.instructions)
    from judges.client import JudgeClient

    client = JudgeClient(spec.endpoint)
    if kind == "deepeval":
        from judges.deepeval_judge import DeepEvalJudge

        return DeepEvalJudge(spec.metric, spec.options, client)
    if kind == "pairwise":
        from judges.pairwise import PairwiseJudge

        return PairwiseJudge(spec.criteria, client, spec.instructions)
    from judges.rubric import RubricJudge

    return RubricJudge(spec.criteria, client, spec.instructions)


def local_model(model_spec: str, backend: Any) -> Any:
    """The local judge model: the judged backend itself when it is the same weights, else one
    loaded once per process (quickstart judges base and candidate with the same judge)."""
    from harness.models import resolve_model

    resolved = resolve_model(model_spec)
    if backend.capabilities.local_weights and backend.resolved.fingerprint == resolved.fingerprint:
        return backend
    if resolved.fingerprint not in _LOCAL_JUDGES:
        from harness.models.hf import HFModel

        _LOCAL_JUDGES[resolved.fingerprint] = HFModel(resolved)
    return _LOCAL_JUDGES[resolved.fingerprint]


def _baseline_backend(model_spec: str, backend: Any) -> Any:
    return local_model(model_spec, backend)  # same rule: reuse loaded weights when identical
