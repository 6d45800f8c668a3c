"""Running a `judge` suite: generations through the normal cache, then judging in batches.

Generation keys and rows are the runner's own (plan_items + the backend's batched generate),
so a judge suite shares cached outputs with a task suite that renders the same prompt.
Each judged batch is one transaction of run_examples and scores; judgments are stored (and
cached) just before it, so a crash loses no paid-for judge call.
"""

from __future__ import annotations

from typing import Any

from harness.judging import Judge, Subject, Verdict, judge_type
from harness.runner.execute import generations as generate
from harness.store import GenerationRow, ScoreRow, Store
from harness.suite import Example
from judges.local import local_model


def run_judge_suite(suite: Any, store: Store, run_id: str, backend: Any, options: Any, progress: Any) -> None:
    limit = store.get_run(run_id).config.get("limit")  # the run's own limit, also on --resume
    examples = suite.examples[:limit] if limit else suite.examples
    # a resume retries failed examples unless --keep-errors (their rows are replaced)
    done = store.done_example_ids(run_id, include_errors=options.keep_errors)
    todo = [ex for ex in examples if ex.id not in done]
    if not todo:
        return
    spec = suite.config.judge
    jt = judge_type(spec.effective_type())
    judge = jt.build(spec, backend)
    outputs = generate(store, backend, suite, todo, options)
    base_outputs = None
    baseline = jt.baseline(spec)
    if baseline is not None:  # pairwise: the baseline answers the same prompts
        base = local_model(baseline, backend)  # reuses loaded weights when they are the same
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
    judge: Judge,
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
