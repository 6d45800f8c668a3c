"""lm-eval samples and results as tunegate rows: metrics, generations, run examples, scores.

Shared by the `benchmark` suite kind (live runs) and `tunegate import lm-eval` (files written
by `lm_eval --log_samples`), so both land in the store in the same shape. Only lm-eval
aggregations that harness.stats reproduces exactly become tunegate metrics:

    mean, nanmean        -> "mean" of the per-doc values (a NaN is an unscored row, as nanmean skips it)
    perplexity           -> "perplexity" of exp(-ll) per doc, weight 1:  exp(mean(-ll))
    weighted_perplexity  -> "perplexity" of exp(-ll/n) per doc, weight n: exp(sum(-ll) / sum(n))
                            (word_perplexity, byte_perplexity: n words / UTF-8 bytes)
    bits_per_byte        -> "weighted_mean" of -ll/(n ln 2) per doc, weight n bytes:
                            -sum(ll) / sum(n) / ln 2

Others (f1, bleu, ...) stay in lm-eval's own aggregate kept with the run.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from harness.store import GenerationRow, ScoreRow

OURS = {
    "mean": "mean",
    "nanmean": "mean",
    "perplexity": "perplexity",
    "weighted_perplexity": "perplexity",
    "bits_per_byte": "weighted_mean",
}
BINARY = {"acc", "acc_norm", "acc_mutual_info", "acc_bytes", "exact_match"}
REQUEST_TYPE = "lm_eval"


@dataclass(frozen=True)
class LmMetric:
    """One lm-eval metric of one task under one filter, as tunegate stores it."""

    task: str
    metric: str
    filter: str
    aggregation: str
    """lm-eval's aggregation name (mean, weighted_perplexity, ...)."""
    higher_is_better: bool

    @property
    def name(self) -> str:
        """'task/metric', or 'task/metric/filter' for a filter other than lm-eval's 'none'."""
        base = f"{self.task}/{self.metric}"
        return base if self.filter == "none" else f"{base}/{self.filter}"

    @property
    def supported(self) -> bool:
        return self.aggregation in OURS

    def run_metric(self) -> tuple[str, dict[str, Any], str, bool, bool]:
        """(name, spec, aggregation, higher_is_better, binary) as Store.create_run takes them."""
        spec: dict[str, Any] = {
            "name": "lm_eval",
            "args": {"task": self.task, "metric": self.metric, "filter": self.filter},
        }
        spec["args"]["aggregation"] = self.aggregation
        binary = self.metric in BINARY and self.aggregation == "mean"
        return self.name, spec, OURS[self.aggregation], self.higher_is_better, binary

    def score(self, example_id: str, raw: Any) -> ScoreRow:
        """The per-doc value lm-eval logged, in the form our aggregation needs."""
        agg = self.aggregation
        try:
            if agg == "weighted_perplexity":
                ll, n = float(raw[0]), float(raw[1])
                return ScoreRow(example_id, self.name, math.exp(-ll / n), n, None, {"loglikelihood": ll})
            if agg == "bits_per_byte":  # weighted by the doc's bytes, so the mean is over all bytes
                ll, n = float(raw[0]), float(raw[1])
                bpb = -ll / (n * math.log(2))
                return ScoreRow(example_id, self.name, bpb, n, None, {"loglikelihood": ll, "bytes": n})
            value = float(raw)
            if agg == "perplexity":
                return ScoreRow(example_id, self.name, math.exp(-value), 1.0, None, {"loglikelihood": value})
        except (TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError) as e:
            return ScoreRow(example_id, self.name, None, 1.0, f"lm-eval value {raw!r} unusable: {e}")
        if math.isnan(value):
            return ScoreRow(example_id, self.name, None, 1.0, "lm-eval gave NaN (not scored)")
        return ScoreRow(example_id, self.name, value, 1.0)


def aggregation_name(fn: Any) -> str | None:
    """lm-eval's registered name of an aggregation function (None for a custom one)."""
    if isinstance(fn, str):
        return fn
    from lm_eval.api.registry import AGGREGATION_REGISTRY

    return next((name for name, f in AGGREGATION_REGISTRY.items() if f is fn), None)


def task_metrics(task: Any) -> list[LmMetric]:
    """Every (metric, filter) a loaded lm-eval Task reports."""
    name = task.config.task
    flist = task.config.filter_list
    filters = [f["name"] for f in flist] if isinstance(flist, list) and flist else ["none"]
    hib = task.higher_is_better()
    out = []
    for metric, fn in task.aggregation().items():
        fallback: str = getattr(fn, "__name__", "custom")
        agg = aggregation_name(fn) or fallback
        out += [LmMetric(name, metric, f, agg, bool(hib.get(metric, True))) for f in filters]
    return out


def task_rows(
    task: str,
    metrics: list[LmMetric],
    samples: list[dict[str, Any]],
    output_type: str,
    model_id: str,
    fingerprint: str,
    latency_s: float | None,
) -> tuple[list[GenerationRow], list[tuple[str, str, bool, None]], list[ScoreRow]]:
    """Generations, run_examples items and scores for one task's logged samples (ids 'task/doc_id')."""
    by_doc: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        by_doc.setdefault(s["doc_id"], []).append(s)
    gens, items, scores = [], [], []
    for doc_id, group in by_doc.items():
        eid = f"{task}/{doc_id}"
        gen, rows = doc_rows(task, metrics, eid, group, output_type, model_id, fingerprint, latency_s)
        gens.append(gen)
        items.append((eid, gen.cache_key, False, None))
        scores += rows
    return gens, items, scores


def doc_rows(
    task: str,
    metrics: list[LmMetric],
    example_id: str,
    samples: list[dict[str, Any]],
    output_type: str,
    model_id: str,
    fingerprint: str,
    latency_s: float | None,
) -> tuple[GenerationRow, list[ScoreRow]]:
    """Rows for one doc from its logged samples (one per filter): generation, scores."""
    first = samples[0]
    args = arguments(first)
    by_filter = {s.get("filter", "none"): s for s in samples}
    key = cache_key(fingerprint, task, first, args)
    params: dict[str, Any] = {"task": task, "output_type": output_type}
    output: str | None = None
    result: dict[str, Any] = {"filtered_resps": {f: s.get("filtered_resps") for f, s in by_filter.items()}}
    if output_type == "generate_until":
        params["gen_kwargs"] = args[0][1] if len(args[0]) > 1 else {}
        output = str(first["resps"][0][0])
    elif output_type in ("multiple_choice", "loglikelihood"):
        params["continuations"] = [a[1] for a in args]
        lls = [float(r[0]) for r in first["filtered_resps"]]
        result["loglikelihoods"] = lls
        if output_type == "multiple_choice":
            output = str(args[max(range(len(lls)), key=lls.__getitem__)][1]).strip()
    else:
        result["loglikelihood"] = float(first["filtered_resps"][0])
    gen = GenerationRow(
        key, model_id, REQUEST_TYPE, str(args[0][0]), params, output, result, latency_s=latency_s
    )
    scores = []
    for m in metrics:
        s = by_filter.get(m.filter)
        if s is None or m.metric not in s:
            scores.append(
                ScoreRow(example_id, m.name, None, 1.0, f"lm-eval logged no {m.metric} ({m.filter})")
            )
        else:
            scores.append(m.score(example_id, s[m.metric]))
    return gen, scores


def arguments(sample: dict[str, Any]) -> list[list[Any]]:
    """Request arguments from a live sample (tuples) or a samples file ({gen_args_i: {arg_j}})."""
    args = sample["arguments"]
    if isinstance(args, dict):
        return [[a[k] for k in sorted(a, key=lambda k: int(k.split("_")[1]))] for a in args.values()]
    return [list(a) for a in args]


def cache_key(fingerprint: str, task: str, sample: dict[str, Any], args: list[list[Any]]) -> str:
    blob = {"fp": fingerprint, "task": task, "doc_id": sample["doc_id"], "doc": sample.get("doc_hash")}
    blob["args"] = args
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def jsonable(v: Any) -> Any:
    """lm-eval results as plain JSON: numpy scalars become numbers, NaN/inf become strings."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def reported(lm_eval_results: dict[str, Any], spec_args: dict[str, Any]) -> tuple[Any, Any]:
    """(value, stderr) lm-eval reported for one stored metric (its run_metrics spec args)."""
    res = lm_eval_results.get(spec_args["task"], {})
    m, f = spec_args["metric"], spec_args["filter"]
    return res.get(f"{m},{f}"), res.get(f"{m}_stderr,{f}")
