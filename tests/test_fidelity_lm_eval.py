"""bits_per_byte / byte_perplexity of lm-eval rolling tasks recomputed from stored rows (#13)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lm_eval.api.metrics import bits_per_byte, weighted_perplexity

from harness import stats
from harness.lm_eval_rows import LmMetric, reported
from harness.results import compare_runs, summarize_run
from harness.runner import RunOptions, run_suite
from harness.store import Store
from suites import load_suite
from tests.conftest import ROOT, run_cli, write_suite

TASKS = ROOT / "suites" / "lm_eval_tasks"


def _aggregate(metric: LmMetric, items: list[tuple[float, int]]) -> float:
    rows = [metric.score(f"d{i}", item) for i, item in enumerate(items)]
    run_metric = metric.run_metric()
    arr = stats.ScoreArrays([r.value for r in rows], [r.weight for r in rows])
    return stats.aggregate(arr, run_metric[2])


def test_rows_reproduce_lm_eval_aggregations_on_fixed_items() -> None:
    rng = np.random.default_rng(13)
    n_bytes = rng.integers(20, 4000, size=50)
    items = [(-float(b) * float(rng.uniform(0.3, 1.4)), int(b)) for b in n_bytes]
    bpb = LmMetric("t", "bits_per_byte", "none", "bits_per_byte", False)
    ppl = LmMetric("t", "byte_perplexity", "none", "weighted_perplexity", False)
    assert bpb.supported and bpb.run_metric()[2] == "weighted_mean"
    assert abs(_aggregate(bpb, items) - bits_per_byte(items)) <= 1e-9
    assert abs(_aggregate(ppl, items) / weighted_perplexity(items) - 1) <= 1e-9
    # Weighted by bytes, not a mean of per-doc values: the unweighted mean differs.
    per_doc = np.mean([-ll / (b * math.log(2)) for ll, b in items])
    assert abs(per_doc - bits_per_byte(items)) > 1e-6


def test_rolling_task_bits_per_byte_from_rows_equals_lm_eval_and_is_gateable(tmp_path, smollm2) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "bpb.yaml").write_text(
        "task: bpb_prose\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {TASKS / 'data' / 'prose.jsonl'}}}}}\n"
        "test_split: test\noutput_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\n"
    )
    suite = load_suite(
        write_suite(
            tmp_path, "name: bpb\nkind: benchmark\ninclude_path: tasks\ntasks: [bpb_prose]\nlimit: 3\n"
        )
    )
    with Store(tmp_path / "t.duckdb") as store:
        out = run_suite(store, smollm2, suite, RunOptions(batch_size=4))
        run, summaries = summarize_run(store, out.run_id)
        results = run.config["lm_eval"]["results"]
        specs = {m["metric"]: m["spec"]["args"] for m in store.run_metrics(out.run_id)}
        got = {m.metric: m.summary.value for m in summaries}
        assert set(got) == {
            "bpb_prose/word_perplexity",
            "bpb_prose/byte_perplexity",
            "bpb_prose/bits_per_byte",
        }
        for name, value in got.items():
            expected, _ = reported(results, specs[name])
            assert abs(value - expected) <= 1e-9 * max(1.0, abs(expected)), name
        # Gateable: it compares like any metric (lower is better, paired over the same docs).
        comps = {c.metric: c for c in compare_runs(store, out.run_id, out.run_id)[2]}
        c = comps["bpb_prose/bits_per_byte"]
        assert c.aggregation == "weighted_mean" and c.paired.n == 3 and c.paired.delta == 0.0
        assert c.paired.higher_is_better is False
    # ...and the gate decides on it: no drop passes, asking for an improvement fails
    policy = tmp_path / "p.yaml"
    for rule, code in (("max_drop: 0.0", 0), ("superior: 0.0", 1)):
        policy.write_text(f"name: bpb\nrules:\n  - {{suite: bpb, metric: bpb_prose/bits_per_byte, {rule}}}\n")
        r = run_cli("gate", "--baseline", out.run_id, "--candidate", out.run_id, "--policy", str(policy),
                    "--db", str(tmp_path / "t.duckdb"))  # fmt: skip
        assert r.returncode == code and "bits_per_byte" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("agg", ["bits_per_byte", "weighted_perplexity"])
def test_a_zero_byte_doc_is_an_error_row_not_a_number(agg: str) -> None:
    row = LmMetric("t", "m", "none", agg, False).score("d0", (-1.0, 0))
    assert row.value is None and row.error
