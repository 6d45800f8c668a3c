"""Conventions by name, each against the library or script that defines it (#13)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sklearn.metrics import accuracy_score, f1_score

from harness.errors import UserError
from harness.stats import ScoreArrays, aggregate
from suites.metrics import METRICS, ExampleView, MetricResult
from tests.test_metrics import squad_f1_score, squad_normalize_answer

TOL = 1e-9


def score(name: str, prediction: str, references: list[str], **args: Any) -> MetricResult:
    return METRICS.build(name, args).unit(prediction, ExampleView(references=references))


# --- rougeLsum -------------------------------------------------------------------------------------

SUMMARIES = [
    ("The cat sat on the mat.\nIt was happy.", ["A cat was sitting on a mat.\nThe cat seemed happy."]),
    ("Stocks fell sharply.\nInvestors worried about rates.", ["Investors fretted over rates.\nStocks fell."]),
    ("one line only with running runners", ["one line\nonly with runs of runners"]),
    ("", ["empty prediction"]),
    (
        "multi reference case.\nsecond sentence",
        ["unrelated text", "multi reference case\nsecond sentence here"],
    ),
]


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_lsum_equals_rouge_score(use_stemmer: bool) -> None:
    ref = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=use_stemmer)
    for pred, refs in SUMMARIES:
        expected = ref.score_multi(refs, pred)["rougeLsum"].fmeasure
        got = score("rougeLsum", pred, refs, use_stemmer=use_stemmer).value
        assert got == pytest.approx(expected, abs=TOL), (pred, refs)
    # Summary-level: splitting on newlines changes the number (rougeL ignores them).
    pred, refs = SUMMARIES[1]
    assert score("rougeLsum", pred, refs).value != score("rougeL", pred, refs).value


# --- exact_match named normalisations --------------------------------------------------------------

EM_CASES = [
    ("Paris", "Paris"),
    ("  Paris\n", "Paris"),
    ("paris", "Paris"),
    ("The Eiffel Tower!", "eiffel tower"),
    ("an apple, a day", "apple day"),
    ("Paris.", "Paris"),
    ("Ünïcode  text", "ünïcode text"),
]


@pytest.mark.parametrize(("pred", "ref"), EM_CASES)
def test_exact_match_named_normalisations(pred: str, ref: str) -> None:
    assert score("exact_match", pred, [ref], normalization="raw").value == float(pred == ref)
    assert score("exact_match", pred, [ref], normalization="strip").value == float(
        pred.strip() == ref.strip()
    )
    squad = float(squad_normalize_answer(pred) == squad_normalize_answer(ref))
    assert score("exact_match", pred, [ref], normalization="squad").value == squad


def test_named_normalisation_refuses_other_flags() -> None:
    with pytest.raises(UserError) as e:
        METRICS.build("exact_match", {"normalization": "raw", "ignore_case": False})
    assert e.value.field == "ignore_case"
    with pytest.raises(UserError) as e:
        METRICS.build("exact_match", {"normalization": "lenient"})
    assert e.value.field == "normalization"
    # The default keeps today's numbers: lower case, ASCII punctuation, whitespace; articles kept.
    assert METRICS.build("exact_match", {}).spec["args"]["normalization"] == "options"
    assert score("exact_match", "The Paris", ["paris"]).value == 0.0
    assert score("exact_match", "PARIS!", ["paris"]).value == 1.0


# --- classification label modes --------------------------------------------------------------------

LABELS = ["positive", "negative", "neutral"]
OUTPUTS = [
    "positive",
    "Positive",
    " negative\n",
    "The answer is negative.",
    "neutral",
    "I think it's positive",
    "POSITIVE.",
    "mixed",
    "negative",
    "neutral",
    "neutral ",
    "nothing",
]
GOLD = [
    "positive",
    "positive",
    "negative",
    "negative",
    "neutral",
    "positive",
    "positive",
    "neutral",
    "negative",
    "positive",
    "neutral",
    "negative",
]


def _reference_map(mode: str, output: str) -> str | None:
    if mode == "strict":
        return output if output in LABELS else None
    low = output.strip().lower()
    return low if low in LABELS else None


@pytest.mark.parametrize("mode", ["strict", "normalized", "extract"])
def test_label_modes_accuracy_and_macro_f1_equal_sklearn_with_labels(mode: str) -> None:
    results = [score("macro_f1", o, [g], labels=LABELS, label_mode=mode) for o, g in zip(OUTPUTS, GOLD)]
    preds = [r.detail["pred"] for r in results]
    if mode != "extract":
        assert preds == [_reference_map(mode, o) for o in OUTPUTS]
    else:  # lenient extraction finds the label stated in prose
        assert preds[3] == "negative" and preds[5] == "positive" and preds[7] is None
    # The unmapped output is its own class: wrong, and outside the averaged labels.
    y_pred = ["<unmapped>" if p is None else p for p in preds]
    arr = ScoreArrays(
        [r.value for r in results], pred=np.array(preds, dtype=object), label=np.array(GOLD, dtype=object)
    )
    assert aggregate(arr, "macro_f1") == pytest.approx(
        f1_score(GOLD, y_pred, labels=LABELS, average="macro", zero_division=0), abs=TOL
    )
    acc = [score("accuracy", o, [g], labels=LABELS, label_mode=mode).value for o, g in zip(OUTPUTS, GOLD)]
    assert np.mean(acc) == pytest.approx(accuracy_score(GOLD, y_pred), abs=TOL)
    assert (
        METRICS.build("accuracy", {"labels": LABELS, "label_mode": mode}).spec["args"]["label_mode"] == mode
    )


def test_a_declared_label_that_never_occurs_counts_as_zero_as_sklearn_with_labels() -> None:
    declared = [*LABELS, "mixed"]  # declared, but neither gold nor any prediction is "mixed"
    results = [score("macro_f1", o, [g], labels=declared) for o, g in zip(OUTPUTS, GOLD)]
    preds = [r.detail["pred"] for r in results]
    y_pred = ["<unmapped>" if p is None else p for p in preds]
    arr = ScoreArrays(
        [r.value for r in results],
        pred=np.array(preds, dtype=object),
        label=np.array(GOLD, dtype=object),
        classes=tuple(declared),
    )
    want = f1_score(GOLD, y_pred, labels=declared, average="macro", zero_division=0)
    assert aggregate(arr, "macro_f1") == pytest.approx(want, abs=TOL)
    seen_only = f1_score(GOLD, y_pred, labels=LABELS, average="macro", zero_division=0)
    assert want == pytest.approx(seen_only * 3 / 4)  # the 4th label is a 0 in the average
    # a resample keeps the declared labels
    idx = np.arange(len(GOLD))[::-1].copy()
    assert aggregate(arr.take(idx), "macro_f1") == pytest.approx(want, abs=TOL)


def test_stored_macro_f1_averages_every_declared_label(tmp_path) -> None:
    from harness.results import summarize_run
    from harness.store import Store
    from tests.conftest import run_cli

    declared = [*LABELS, "mixed"]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "t": "x", "y": g}) + "\n" for i, g in enumerate(GOLD)))
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: cls\nkind: task\ndata: d.jsonl\nprompt: '{{ t }}'\nreference: y\n"
        f"metrics: [{{name: macro_f1, labels: {json.dumps(declared)}}}]\n"
    )
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": f"e{i}", "output": o}) + "\n" for i, o in enumerate(OUTPUTS)))
    db = tmp_path / "c.duckdb"
    r = run_cli("score", "-p", str(preds), "-s", str(suite), "--db", str(db), "--no-progress")
    assert r.returncode == 0, r.stderr
    with Store(db) as store:
        run_id = store.db.execute("SELECT run_id FROM runs").fetchone()[0]
        _, [m] = summarize_run(store, run_id)
    y_pred = [
        "<unmapped>" if p is None else p
        for p in (score("macro_f1", o, [g], labels=declared).detail["pred"] for o, g in zip(OUTPUTS, GOLD))
    ]
    assert m.summary.value == pytest.approx(
        f1_score(GOLD, y_pred, labels=declared, average="macro", zero_division=0), abs=TOL
    )


def test_label_modes_differ_where_they_should() -> None:
    one = {"labels": LABELS}
    assert score("accuracy", "Positive", ["positive"], **one, label_mode="strict").value == 0.0
    assert score("accuracy", "Positive", ["positive"], **one, label_mode="normalized").value == 1.0
    assert score("accuracy", "It is positive.", ["positive"], **one, label_mode="normalized").value == 0.0
    assert score("accuracy", "It is positive.", ["positive"], **one).value == 1.0  # extract, the default


# --- json_valid: RFC 8259 and extract: fence --------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "extract", "expected"),
    [
        ('```json\n{"a": 1}\n```', "fence", 1.0),
        ("Here: ```\n[1, 2]\n``` done", "fence", 1.0),
        ('{"a": 1}', "fence", 0.0),  # no fence: fence-only extraction takes nothing else
        ('The JSON is {"a": 1}.', "fence", 0.0),
        ('The JSON is {"a": 1}.', True, 1.0),
        ("```json\n{'a': 1}\n```", "fence", 0.0),
        ('{"a": NaN}', True, 0.0),  # NaN / Infinity are not JSON (RFC 8259)
        ('{"a": Infinity}', False, 0.0),
        ('```\n{"x": -Infinity}\n```', "fence", 0.0),
    ],
)
def test_json_valid_fence_and_rfc8259(output: str, extract: Any, expected: float) -> None:
    assert score("json_valid", output, [], extract=extract).value == expected


# --- the Chinese tokenizer bug: punctuation separates, never joins ---------------------------------

REGRESSIONS = [
    # (prediction, reference): partly right answers that scored 0 when marks were deleted first
    ("日期是2008年8月8日", "2008-08-08"),
    ("增长了6.3个百分点", "增长6.3%"),
    ("时间是10点30分", "10:30"),
    ("请升级到v1版本", "v1.2"),
    ("我们用e邮件联系", "用e-mail联系"),
]


def _bug_tokens(text: str) -> list[str]:
    """What tokenize: char did before the fix: delete marks, then split (the glued tokens)."""
    from suites.metrics import tokenize as tk

    return tk.char_tokens("".join(ch for ch in text.lower() if ch not in tk.punctuation()))


@pytest.mark.parametrize(("pred", "ref"), REGRESSIONS)
def test_char_punctuation_separates_tokens(pred: str, ref: str) -> None:
    from suites.metrics import tokenize as tk

    toks = tk.tokens(tk.unicode_normalize(ref), "char")
    assert all(t in ref.lower() for t in toks)  # every token is a piece of the text, none glued
    r = score("token_f1", pred, [ref], tokenize="char")
    assert r.value > 0.0
    glued = _bug_tokens(ref)
    assert len(glued) < len(toks)  # the old behaviour did glue pieces together


def test_char_regressions_exact_tokens() -> None:
    from suites.metrics import tokenize as tk

    def toks(text: str) -> list[str]:
        return tk.tokens(tk.unicode_normalize(text), "char")

    assert toks("2008-08-08") == ["2008", "08", "08"]
    assert toks("增长6.3%") == ["增", "长", "6", "3"]
    assert toks("10:30开始") == ["10", "30", "开", "始"]
    assert toks("v1.2版") == ["v1", "2", "版"]
    assert toks("用e-mail联系") == ["用", "e", "mail", "联", "系"]
    # English numbers under `default` are untouched by the fix.
    assert score("token_f1", "It was 1,234 dollars!", ["1234 dollars"]).value == pytest.approx(
        squad_f1_score("It was 1,234 dollars!", "1234 dollars"), abs=TOL
    )
    assert score("exact_match", "$1,234!", ["1234"]).value == 1.0  # SQuAD deletes ASCII marks
    assert score("exact_match", "2008-08-08", ["2008-08-08"], tokenize="char").value == 1.0
    assert score("exact_match", "2008-08-08", ["20080808"], tokenize="char").value == 0.0


# --- char_raw: rouge-score's own character convention -----------------------------------------------


class ListTokenizer:
    """What papers pass rouge-score for Chinese: every non-space character, as it is."""

    def tokenize(self, text: str) -> list[str]:
        return [ch for ch in text if not ch.isspace()]


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL"])
def test_char_raw_equals_rouge_score_with_a_character_tokenizer(rouge_type: str) -> None:
    ref = rouge_scorer.RougeScorer([rouge_type], tokenizer=ListTokenizer())
    cases = [
        ("我今天很忙。", ["我今天非常忙！"]),
        ("Café 咖啡，ＡＢＣ", ["café咖啡,ABC"]),
        ("退款1到3天", ["退款1-3天"]),
    ]
    for pred, refs in cases:
        expected = ref.score_multi(refs, pred)[rouge_type].fmeasure
        assert score(rouge_type, pred, refs, tokenize="char_raw").value == pytest.approx(expected, abs=TOL)
    # Case, full-width forms and punctuation are kept: char_raw and char differ on them.
    pred, refs = cases[1]
    assert (
        score("rouge1", pred, refs, tokenize="char_raw").value
        < score("rouge1", pred, refs, tokenize="char").value
    )


def test_char_raw_bleu_is_sacrebleu_over_characters() -> None:
    pred, ref = "我今天很忙。", "我今天非常忙！"
    expected = sacrebleu.sentence_bleu(" ".join(pred), [" ".join(ref)], tokenize="none").score
    assert score("bleu", pred, [ref], tokenize="char_raw").value == pytest.approx(expected, abs=TOL)
    assert score("token_f1", "ＡＢ", ["AB"], tokenize="char_raw").value == 0.0  # no NFKC
