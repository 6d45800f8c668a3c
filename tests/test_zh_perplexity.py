"""Tokenizer-free perplexity (bits per byte, byte and word perplexity) against lm-eval itself.

lm-eval computes the same texts' rolling log-likelihoods with our SmolLM2 model object, and its
own `count_words`/`count_bytes` and aggregation functions turn them into corpus numbers.
"""

from __future__ import annotations

import json
import math

import pytest

from harness.results import summarize_run
from harness.runner import RunOptions, run_suite
from suites import load_suite
from tests.conftest import write_suite

MAX_LENGTH = 64

TEXTS = [
    "The committee met on Tuesday and agreed to postpone the vote until the budget is clear.",
    "退款审核通过后，款项会在一到三个工作日内原路退回到您的支付账户。如果超过五个工作日仍未到账，"
    "请联系在线客服并提供订单号，我们会帮您查询银行的处理进度。",
    "Short line with a trailing newline.\n",
    "  Leading spaces and   several    gaps between words, so whitespace splitting matters here.",
    "混合 text：在 App 里点击“联系客服”，输入 transfer 即可转人工。Prices start at 99 元.",
    " ".join(["A long paragraph repeats itself to cross the window boundary several times."] * 6),
]


@pytest.fixture(scope="module")
def ppl_run(tmp_path_factory, smollm2):
    from harness.store import Store

    tmp = tmp_path_factory.mktemp("ppl")
    data = "".join(
        json.dumps({"id": f"t{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(TEXTS)
    )
    suite = load_suite(
        write_suite(tmp, f"name: p\nkind: perplexity\ndata: data.jsonl\nmax_length: {MAX_LENGTH}\n", data)
    )
    with Store(tmp / "t.duckdb") as store:
        out = run_suite(store, smollm2, suite, RunOptions(batch_size=4))
        _, summaries = summarize_run(store, out.run_id)
        rows = {
            m: store.scores(out.run_id, m) for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")
        }
    return {s.metric: s for s in summaries}, rows


def lm_eval_numbers(smollm2) -> dict[str, float]:
    from lm_eval.api.instance import Instance
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity
    from lm_eval.api.task import Task
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=smollm2.model, tokenizer=smollm2.tokenizer, batch_size=4, max_length=MAX_LENGTH)
    reqs = [
        Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i)
        for i, t in enumerate(TEXTS)
    ]
    lls = lm.loglikelihood_rolling(reqs, disable_tqdm=True)
    words = [(ll, Task.count_words(t)) for ll, t in zip(lls, TEXTS)]
    bytes_ = [(ll, Task.count_bytes(t)) for ll, t in zip(lls, TEXTS)]
    return {
        "word_perplexity": weighted_perplexity(words),
        "byte_perplexity": weighted_perplexity(bytes_),
        "bits_per_byte": bits_per_byte(bytes_),
    }


def test_extras_equal_lm_eval(ppl_run, smollm2):
    ours, _ = ppl_run
    theirs = lm_eval_numbers(smollm2)
    for name, value in theirs.items():
        assert ours[name].summary.value == pytest.approx(value, rel=1e-4), name
        assert not ours[name].higher_is_better
    # the three are one quantity in different units: bpb = log2(byte perplexity)
    assert ours["bits_per_byte"].summary.value == pytest.approx(
        math.log2(ours["byte_perplexity"].summary.value), rel=1e-9
    )


def test_extras_store_counts_per_example(ppl_run):
    _, rows = ppl_run
    for (_eid, value, weight, err, detail), text in zip(rows["byte_perplexity"], TEXTS):
        assert err is None
        assert weight == len(text.encode("utf-8")) == detail["n_bytes"]
        assert value == pytest.approx(math.exp(detail["nll"] / detail["n_bytes"]), rel=1e-12)
    # lm-eval's whitespace word count: a leading space and a trailing newline each add an empty "word"
    words = [d["n_words"] for *_, d in rows["word_perplexity"]]
    assert words[2] == len("Short line with a trailing newline.".split()) + 1
    assert words[3] == len(TEXTS[3].split()) + 1
    assert words[1] == 1  # Chinese without spaces is one lm-eval "word": bits per byte is the fair number


def test_bits_per_byte_compares_across_tokenizers():
    """The aggregation is corpus-level: sum(nll) / sum(bytes) / ln 2, not a mean of ratios."""
    import numpy as np

    from harness.stats import ScoreArrays, aggregate

    nll, n_bytes = np.array([10.0, 300.0]), np.array([10.0, 1000.0])
    s = ScoreArrays(nll / n_bytes / math.log(2), n_bytes)
    assert aggregate(s, "weighted_mean") == pytest.approx(nll.sum() / n_bytes.sum() / math.log(2), rel=1e-12)
    assert aggregate(s, "weighted_mean") != pytest.approx(aggregate(s, "mean"))
