"""Corpus BLEU / chrF and their paired tests, checked against sacreBLEU's own APIs (#13)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from harness import corpus
from harness.errors import UserError
from harness.stats import ScoreArrays, aggregate, compare_paired, summarize
from suites.metrics import METRICS, ExampleView

WORDS = "the a cat dog sat on mat quickly ran over fence big small red house tree bird sang loud .".split()


def _sentences(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 14)))) for _ in range(n)]


def _noisy(rng: np.random.Generator, refs: list[str], keep: float) -> list[str]:
    out = []
    for r in refs:
        toks = [t if rng.random() < keep else str(rng.choice(WORDS)) for t in r.split()]
        out.append(" ".join(toks))
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    rng = np.random.default_rng(13)
    n = 120
    ref1 = _sentences(rng, n)
    ref2 = _noisy(rng, ref1, 0.7)
    # Every third example has one reference only: sacreBLEU gets None in the second stream.
    ref2_padded = [None if i % 3 == 0 else r for i, r in enumerate(ref2)]
    base = _noisy(rng, ref1, 0.55)
    cand = _noisy(rng, ref1, 0.65)
    refs = [[a] if b is None else [a, b] for a, b in zip(ref1, ref2_padded)]
    return {"refs": refs, "streams": [ref1, ref2_padded], "base": base, "cand": cand}


def _rows(name: str, hyps: list[str], refs: list[list[str]], **args: Any):
    built = METRICS.build(name, args)
    results = [built.unit(h, ExampleView(r)) for h, r in zip(hyps, refs)]
    stat = corpus.statistic(built.entry.info["aggregation"], built.spec["args"])
    arr = ScoreArrays([r.value for r in results], stats=[r.detail["stats"] for r in results], corpus=stat)
    return arr, results, built


CASES = [
    ("corpus_bleu", {}, lambda: BLEU()),
    ("corpus_bleu", {"lowercase": True, "tokenize": "intl"}, lambda: BLEU(lowercase=True, tokenize="intl")),
    (
        "corpus_bleu",
        {"smooth_method": "floor", "smooth_value": 0.2},
        lambda: BLEU(smooth_method="floor", smooth_value=0.2),
    ),
    ("corpus_chrf", {}, lambda: CHRF()),
    ("corpus_chrf", {"word_order": 2}, lambda: CHRF(word_order=2)),
]


@pytest.mark.parametrize(("name", "args", "ref"), CASES)
def test_corpus_score_from_rows_equals_sacrebleu(name, args, ref, data) -> None:
    arr, results, built = _rows(name, data["base"], data["refs"], **args)
    metric = ref()
    expected = metric.corpus_score(data["base"], data["streams"])
    assert aggregate(arr, built.entry.info["aggregation"]) == pytest.approx(expected.score, abs=1e-9)
    # The stored signature is sacreBLEU's (nrefs is var: the corpus mixes one and two references).
    sig = corpus.signature(
        corpus.sacrebleu_metric(built.entry.info["aggregation"], built.spec["args"]), "var"
    )
    expected_sig = str(metric.get_signature())
    if name == "corpus_bleu" and "tokenize" not in args:  # auto: zh for CJK references, else 13a
        expected_sig = expected_sig.replace("tok:13a", "tok:auto(zh|13a)")
    assert sig == expected_sig
    assert {r.detail["nrefs"] for r in results} == {1, 2}


def test_none_padding_is_not_empty_string_padding(data) -> None:
    # "" is a real (empty) reference for sacreBLEU and changes the brevity penalty; our rows
    # must equal the None-padded corpus, and differ from the ""-padded one.
    # Short hypotheses (4 words of the first reference): "" is often the closest reference length.
    short = [" ".join(r[0].split()[:4]) for r in data["refs"]]
    arr, _, _ = _rows("corpus_bleu", short, data["refs"])
    none_padded = sacrebleu.corpus_bleu(short, data["streams"]).score
    empty_padded = sacrebleu.corpus_bleu(
        short, [data["streams"][0], [r or "" for r in data["streams"][1]]]
    ).score
    assert aggregate(arr, "corpus_bleu") == pytest.approx(none_padded, abs=1e-9)
    assert not math.isclose(none_padded, empty_padded)


def test_sentence_value_is_sentence_bleu(data) -> None:
    _, results, _ = _rows("corpus_bleu", data["base"][:10], data["refs"][:10])
    for h, r, res in zip(data["base"], data["refs"], results):
        assert res.value == pytest.approx(sacrebleu.sentence_bleu(h, r).score, abs=1e-9)
    _, results, _ = _rows("corpus_chrf", data["base"][:10], data["refs"][:10])
    for h, r, res in zip(data["base"], data["refs"], results):
        assert res.value == pytest.approx(sacrebleu.sentence_chrf(h, r).score, abs=1e-9)


def _sacrebleu_paired(test_type: str, name: str, data, metric, n_samples: int):
    named = [("base", data["base"]), ("cand", data["cand"])]
    _, scores = PairedTest(named, {name: metric}, data["streams"], test_type=test_type, n_samples=n_samples)()
    key = next(k for k in scores if k != "System")
    return scores[key][0], scores[key][1]


@pytest.mark.parametrize(("name", "args", "ref"), [CASES[0], CASES[3], CASES[4]])
def test_paired_bootstrap_equals_sacrebleu_paired_test(name, args, ref, data) -> None:
    pb, _, built = _rows(name, data["base"], data["refs"], **args)
    pc, _, _ = _rows(name, data["cand"], data["refs"], **args)
    agg = built.entry.info["aggregation"]
    out = compare_paired(pb, pc, aggregation=agg, n_resamples=300)
    bl, sy = _sacrebleu_paired("bs", name, data, ref(), 300)
    assert out.test == "paired_bs"
    assert out.p_value == sy.p_value  # exactly: same draws, same arithmetic
    assert out.detail["candidate_mean"] == pytest.approx(sy.mean, abs=1e-9)
    assert out.detail["candidate_ci"] == pytest.approx(sy.ci, abs=1e-9)
    assert out.detail["baseline_mean"] == pytest.approx(bl.mean, abs=1e-9)
    assert out.detail["baseline_ci"] == pytest.approx(bl.ci, abs=1e-9)
    assert (out.baseline, out.candidate) == pytest.approx((bl.score, sy.score), abs=1e-9)
    assert out.ci_low < out.delta < out.ci_high


@pytest.mark.parametrize(("name", "args", "ref"), [CASES[0], CASES[3]])
def test_approximate_randomization_equals_sacrebleu(name, args, ref, data) -> None:
    pb, _, built = _rows(name, data["base"], data["refs"], **args)
    pc, _, _ = _rows(name, data["cand"], data["refs"], **args)
    out = compare_paired(
        pb, pc, aggregation=built.entry.info["aggregation"], test="paired_ar", n_resamples=500
    )
    _, sy = _sacrebleu_paired("ar", name, data, ref(), 500)
    assert out.test == "paired_ar" and out.detail["ar"] == 500
    assert out.p_value == sy.p_value


def test_ar_confidence_and_seed_follow_sacrebleu(data) -> None:
    pb, _, _ = _rows("corpus_bleu", data["base"], data["refs"])
    pc, _, _ = _rows("corpus_bleu", data["cand"], data["refs"])
    cs = pb.corpus
    ours = corpus.paired_test(pb.stats, pc.stats, cs, test="paired_ar", n_samples=200, n_ar_confidence=100)
    named = [("base", data["base"]), ("cand", data["cand"])]
    _, scores = PairedTest(
        named, {"bleu": BLEU()}, data["streams"], test_type="ar", n_samples=200, n_ar_confidence=100
    )()
    sy = scores["BLEU"][1]
    assert (ours.p_value, ours.candidate_mean, ours.candidate_ci) == pytest.approx(
        (sy.p_value, sy.mean, sy.ci), abs=1e-12
    )
    other = corpus.paired_test(pb.stats, pc.stats, cs, test="paired_bs", n_samples=200, seed=7)
    assert other.candidate_ci != corpus.paired_test(pb.stats, pc.stats, cs, n_samples=200).candidate_ci


def test_identical_systems_are_not_significant(data) -> None:
    pb, _, _ = _rows("corpus_bleu", data["base"], data["refs"])
    out = compare_paired(pb, pb, aggregation="corpus_bleu", n_resamples=200)
    assert out.delta == 0.0 and out.improved is None and out.p_value == pytest.approx(1 / 201)


def test_summary_ci_recomputes_corpus_bleu_per_resample(data) -> None:
    pb, _, _ = _rows("corpus_bleu", data["base"], data["refs"])
    s = summarize(pb, "corpus_bleu", n_boot=200, seed=3)
    idx = np.random.default_rng(3).integers(
        0, len(data["base"]), size=(200, len(data["base"])), dtype=np.uint32
    )
    reps = [
        BLEU()
        .corpus_score(
            [data["base"][i] for i in row],
            [[data["refs"][i][0] for i in row], [data["streams"][1][i] for i in row]],
        )
        .score
        for row in idx
    ]
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi), rel=1e-5)


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("corpus_bleu", {"tokenize": "spaces"}, "tokenize"),
        ("corpus_bleu", {"smooth_method": "magic"}, "smooth_method"),
        ("corpus_bleu", {"max_ngram_order": 0}, "max_ngram_order"),
        ("corpus_chrf", {"beta": 0}, "beta"),
        ("corpus_chrf", {"char_order": 0}, "char_order"),
    ],
)
def test_bad_corpus_options_name_the_field(name, args, field) -> None:
    with pytest.raises(UserError) as e:
        METRICS.build(name, args)
    assert e.value.field == field


def test_tests_that_do_not_fit_are_refused(data) -> None:
    pb, _, _ = _rows("corpus_bleu", data["base"][:20], data["refs"][:20])
    with pytest.raises(ValueError, match="mean"):
        compare_paired(pb, pb, aggregation="corpus_bleu", test="t")
    with pytest.raises(ValueError, match="corpus"):
        compare_paired(ScoreArrays([1.0, 2.0]), ScoreArrays([1.0, 3.0]), test="paired_bs")
