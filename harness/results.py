"""Read stored runs into summaries and paired comparisons (no model is ever called here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import corpus, stats
from harness.errors import UserError
from harness.measurement import Comparability, Mismatch
from harness.store import RunRecord, Store


@dataclass(frozen=True)
class MetricSummary:
    metric: str
    aggregation: str
    higher_is_better: bool
    summary: stats.Summary
    n_errors: int
    signature: str | None = None
    """sacreBLEU's signature of a corpus metric (nrefs from the stored rows)."""


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    aggregation: str
    paired: stats.Paired
    n_errors: tuple[int, int]
    only_in: tuple[int, int]
    """Examples scored in only one of the two runs (left out of the pairing)."""
    regressed: list[dict[str, Any]]
    signature: str | None = None
    """sacreBLEU's signature of a corpus metric, with the paired test's settings."""
    mismatches: tuple[Mismatch, ...] = ()
    """Differences in how the two runs measured this metric that the user allowed by name
    (`--allow-mismatch`): shown beside the result everywhere."""
    pair: Comparability | None = None
    """The whole pair's check: what is meant to differ, what could not be checked."""


def _declared(spec: dict[str, Any] | None) -> tuple[str, ...] | None:
    """A classification metric's declared labels (macro-F1 averages over all of them)."""
    labels = ((spec or {}).get("args") or {}).get("labels")
    return tuple(str(x) for x in labels) if isinstance(labels, list) and labels else None


def _score_arrays(
    cols: dict[str, Any],
    suffix: str = "",
    labels: bool = False,
    cs: corpus.CorpusStatistic | None = None,
    classes: tuple[str, ...] | None = None,
) -> stats.ScoreArrays:
    st = None
    if cs is not None:
        rows = cols["stats" + suffix]
        st = np.stack(rows) if len(rows) else np.zeros((0, 0), dtype=np.int64)
    return stats.ScoreArrays(
        np.asarray(cols["value" + suffix], dtype=np.float64),
        np.asarray(cols["weight" + suffix], dtype=np.float64),
        np.asarray(cols["pred" + suffix], dtype=object) if labels else None,
        np.asarray(cols["label" + suffix], dtype=object) if labels else None,
        st,
        cs,
        classes if labels else None,
    )


def _corpus_stat(aggregation: str, spec: dict[str, Any] | None) -> corpus.CorpusStatistic | None:
    if not stats.is_corpus(aggregation):
        return None
    return corpus.statistic(aggregation, (spec or {}).get("args"))


def _signature(cs: corpus.CorpusStatistic | None, nrefs: Any, extra: str = "") -> str | None:
    """The corpus signature: one reference count for every row, or sacreBLEU's `var`."""
    if cs is None:
        return None
    counts = {int(x) for x in nrefs}
    return corpus.signature(cs.metric, counts.pop() if len(counts) == 1 else "var") + extra


def paired_arrays(
    store: Store,
    run_a: str,
    run_b: str,
    metric: str,
    aggregation: str,
    spec: dict[str, Any] | None = None,
    exclude: set[str] | None = None,
) -> tuple[stats.ScoreArrays, stats.ScoreArrays, np.ndarray, dict[str, Any]]:
    """Both runs' scores of one metric on the examples both scored, aligned, as numpy arrays.

    `exclude`: example ids left out (e.g. contaminated ones, for a clean-subset comparison).
    """
    labels = stats.needs_labels(aggregation)
    cs = _corpus_stat(aggregation, spec)
    cols = store.paired_score_columns(run_a, run_b, metric, labels=labels, stats=cs is not None)
    if exclude:
        keep = ~np.isin(np.asarray(cols["example_id"], dtype=object), list(exclude))
        n = len(keep)
        cols = {k: (v[keep] if isinstance(v, np.ndarray) and len(v) == n else v) for k, v in cols.items()}
    a = _score_arrays(cols, "_a", labels, cs, _declared(spec))
    b = _score_arrays(cols, "_b", labels, cs, _declared(spec))
    return a, b, np.asarray(cols["example_id"], dtype=object), cols


def summarize_run(store: Store, run_id: str) -> tuple[RunRecord, list[MetricSummary]]:
    """Per metric: n, aggregate, standard error, 95% bootstrap CI; errors counted apart."""
    run = store.get_run(run_id)
    out = []
    for m in store.run_metrics(run.run_id):
        labels = stats.needs_labels(m["aggregation"])
        cs = _corpus_stat(m["aggregation"], m["spec"])
        cols = store.score_columns(run.run_id, m["metric"], labels=labels, stats=cs is not None)
        arr, n_err = _score_arrays(cols, labels=labels, cs=cs, classes=_declared(m["spec"])), cols["n_errors"]
        out.append(
            MetricSummary(
                m["metric"],
                m["aggregation"],
                m["higher_is_better"],
                stats.summarize(arr, m["aggregation"]),
                n_err,
                _signature(cs, cols["nrefs"]) if cs is not None else None,
            )
        )
    return run, out


def compare_runs(
    store: Store,
    a: str,
    b: str,
    k: int = 5,
    test: str = "auto",
    ci: str = "auto",
    metrics: set[str] | None = None,
    confidence: float = 0.95,
    exclude: set[str] | None = None,
    allow: set[str] | frozenset[str] = frozenset(),
) -> tuple[RunRecord, RunRecord, list[MetricComparison]]:
    """Paired comparison of run `b` (candidate) against run `a` (baseline), metric by metric.

    `test` / `ci` name the paired test and interval (stats.TESTS, stats.CI_METHODS); a named one
    that does not fit a metric (McNemar on a continuous score, a t-test on macro-F1) is an error.
    `confidence` is the CI's level (the gate widens it under a multiple-testing correction);
    `exclude` leaves examples out of the pairing (the gate's `subset: clean`).
    Before any statistic the two runs' measurement records are checked (`comparability`): a
    difference that changes what a number means is a UserError unless its field is in `allow`.
    """
    if test not in stats.TESTS:
        raise UserError(f"unknown paired test '{test}'; known: {', '.join(stats.TESTS)}", field="test")
    if ci not in stats.CI_METHODS:
        raise UserError(f"unknown CI method '{ci}'; known: {', '.join(stats.CI_METHODS)}", field="ci")
    ra, rb = store.get_run(a), store.get_run(b)
    pair = comparability(store, ra, rb, allow, metrics)
    metrics_b = {m["metric"]: m for m in store.run_metrics(rb.run_id)}
    out = []
    for m in store.run_metrics(ra.run_id):
        if m["metric"] not in metrics_b or (metrics is not None and m["metric"] not in metrics):
            continue
        agg = m["aggregation"]
        pa, pb, ids, cols = paired_arrays(store, ra.run_id, rb.run_id, m["metric"], agg, m["spec"], exclude)
        try:
            paired = stats.compare_paired(
                pa,
                pb,
                aggregation=agg,
                higher_is_better=m["higher_is_better"],
                binary=m["binary"],
                test=test,
                ci=ci,
                confidence=confidence,
            )
        except ValueError as e:
            if test == "auto" and ci == "auto":
                raise
            raise UserError(f"{m['metric']}: {e}", field="test") from None
        sig = None
        if pa.corpus is not None:
            d = paired.detail
            tail = f"|bs:{d['bs']}|seed:{d['seed']}" + (f"|ar:{d['ar']}" if "ar" in d else "")
            sig = _signature(pa.corpus, cols["nrefs_a"], tail)
        worst = stats.regressions(pa.value, pb.value, higher_is_better=m["higher_is_better"], k=k)
        worst_ids = [str(ids[i]) for i in worst]
        outs_a = store.example_outputs(ra.run_id, worst_ids)
        outs_b = store.example_outputs(rb.run_id, worst_ids)
        regressed = [
            {
                "example_id": e,
                "baseline": float(pa.value[i]),
                "candidate": float(pb.value[i]),
                "reference": outs_a.get(e, {}).get("reference"),
                "baseline_output": outs_a.get(e, {}).get("output"),
                "candidate_output": outs_b.get(e, {}).get("output"),
            }
            for i, e in zip(worst, worst_ids)
        ]
        out.append(
            MetricComparison(
                m["metric"],
                m["aggregation"],
                paired,
                cols["n_errors"],
                cols["only_in"],
                regressed,
                sig,
                tuple(pair.for_metric(m["metric"])),
                pair,
            )
        )
    return ra, rb, out


def comparability(
    store: Store,
    ra: RunRecord,
    rb: RunRecord,
    allow: set[str] | frozenset[str] = frozenset(),
    metrics: set[str] | None = None,
) -> Comparability:
    """Check that runs `ra` and `rb` measured the same way (harness.measurement); refuse with one
    UserError naming both runs, the fields and both values unless every mismatch is allowed."""
    from harness import measurement

    if ra.suite_name != rb.suite_name:
        raise UserError(
            f"runs {ra.run_id} ({ra.suite_name}) and {rb.run_id} ({rb.suite_name}) are of different "
            "suites; compare runs of the same suite"
        )
    rec_a, rec_b = store.measurement(ra.run_id), store.measurement(rb.run_id)
    names_b = {m["metric"] for m in store.run_metrics(rb.run_id)}
    names = {m["metric"] for m in store.run_metrics(ra.run_id)} & names_b
    if metrics is not None:
        names &= metrics
    pair = measurement.check(rec_a, rec_b, names)
    legacy = rec_a.get("legacy") or rec_b.get("legacy")
    if legacy and ra.suite_id != rb.suite_id and not pair.mismatches:
        # all that is known of an old run's suite is its content hash (file + data)
        pair.mismatches.append(
            Mismatch("data", "suite file or data (content hash)", ra.suite_id, rb.suite_id)
        )
    if _loglikelihood_rows(rec_a, ra) and not {"scoring", "tokenizer"} & set(allow):
        n_bad, n_pairs, first, na, nb = store.scored_token_differences(ra.run_id, rb.run_id)
        if n_bad:
            pair.mismatches.append(
                Mismatch(
                    "scoring",
                    f"scored tokens per example (differ on {n_bad} of {n_pairs} paired examples, "
                    f"first on example '{first}')",
                    na,
                    nb,
                )
            )
    refused = [m for m in pair.mismatches if m.field not in allow]
    if refused:
        raise UserError(measurement.refusal(ra.run_id, rb.run_id, refused))
    return pair


def _loglikelihood_rows(record: dict[str, Any], run: RunRecord) -> bool:
    """Does the run store per-example log-likelihood rows (a perplexity-kind suite)?"""
    types = record.get("request_types")
    return "rolling_loglikelihood" in types if types is not None else run.suite_kind == "perplexity"
