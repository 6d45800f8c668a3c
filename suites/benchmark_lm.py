"""lm-eval's `LM` over any tunegate backend: how benchmark suites run on endpoints and llama.cpp.

A request that still fails after the transport's retries stops the task (lm-eval has no
"could not score"; an empty answer would be scored as wrong), so the run fails visibly and
`--resume` redoes the tasks without rows.

Backends with local transformers weights get lm-eval's own HFLM (benchmark_run.make_lm), which
is what lm-eval's numbers are checked against. Every other backend that serves a task's request
types (an `openai:` endpoint, `llamacpp:`) gets this adapter: lm-eval's requests become our
requests, sent through the backend's batched calls (the same transport, concurrency and retry
policy as task suites), and the answers go back to lm-eval, which computes and aggregates its
metrics; every doc × metric is then stored as a row as for HFLM."""

from __future__ import annotations

import logging
from typing import Any

from harness.config import GenerationParams
from harness.errors import UserError
from harness.suite import Request

log = logging.getLogger(__name__)


def backend_lm(backend: Any, batch_size: int, max_length: int | None) -> Any:
    from lm_eval.api.model import LM

    class BackendLM(LM):
        def __init__(self) -> None:
            super().__init__()
            self.backend = backend
            self.max_length = max_length or 2048

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            pairs = [(r.args[0], r.args[1]) for r in requests]
            out: list[Any] = [None] * len(pairs)
            for batch in backend.loglikelihood(pairs, batch_size):
                for i, ll in batch:
                    out[i] = ll
            return [_ll_or_fail(ll) for ll in out]

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            texts = [r.args[0] for r in requests]
            out: list[Any] = [None] * len(texts)
            for batch in backend.rolling_loglikelihood(texts, self.max_length, self.max_length, batch_size):
                for i, r in batch:
                    out[i] = r
            for r in out:
                if r is None or r.error is not None:
                    raise UserError(
                        f"a rolling log-likelihood request failed: {r.error if r else 'no answer'}"
                    )
            return [-r.nll for r in out]

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            # lm-eval passes (context, gen_kwargs); group by kwargs so each group is one batched call
            groups: dict[str, list[int]] = {}
            for i, r in enumerate(requests):
                groups.setdefault(repr(sorted(r.args[1].items())), []).append(i)
            out: list[str] = [""] * len(requests)
            for idx in groups.values():
                kw = requests[idx[0]].args[1]
                until = kw.get("until") or []
                params = GenerationParams(
                    max_new_tokens=int(kw.get("max_gen_toks", 256)),
                    temperature=float(kw.get("temperature", 0.0) or 0.0),
                    stop=[until] if isinstance(until, str) else list(until),
                )
                reqs = [
                    backend.prepare(Request("generate", requests[i].args[0], params.model_dump()))
                    for i in idx
                ]
                for batch in backend.generate(reqs, params, batch_size):
                    for k, g in batch:
                        # lm-eval would score an empty answer as wrong: a failed call stops the
                        # task instead (the run is marked failed and --resume redoes the task)
                        if g.error is not None or g.text is None:
                            raise UserError(f"a benchmark generation failed after retries: {g.error}")
                        out[idx[k]] = g.text
            return out

    return BackendLM()


def _ll_or_fail(ll: Any) -> tuple[float, bool]:
    if ll is None or ll.error is not None or ll.logprob is None:
        raise UserError(f"a log-likelihood request failed: {ll.error if ll else 'no answer'}")
    if ll.is_greedy is None and not _unknown_greedy:
        _unknown_greedy.append(True)
        log.warning(
            "the backend did not say whether continuations are greedy (no top log-probabilities): "
            "lm-eval metrics built on is_greedy count such docs as not greedy"
        )
    return ll.logprob, bool(ll.is_greedy)


_unknown_greedy: list[bool] = []
