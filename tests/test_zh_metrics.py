"""Chinese-aware text metrics checked against the reference libraries, and English unchanged.

Reference values come from the libraries themselves inside the test: rouge-score with an
independently written tokenizer, sacrebleu `zh`/`13a`, and LLaMA-Factory's ComputeSimilarity
steps (jieba + rouge-chinese + nltk) written out here.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import unicodedata
from collections import Counter
from typing import Any

import jieba
import pytest
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_chinese import Rouge
from rouge_score import rouge_scorer

from harness.errors import UserError
from suites.metrics import METRICS, ExampleView, MetricResult

TOL = 1e-9

ZH_CASES: list[tuple[str, list[str]]] = [
    ("我今天很忙。", ["我今天很忙。"]),
    ("我今天很忙", ["我今天非常忙。"]),
    ("退款审核通过后1到3个工作日原路退回。", ["退款审核通过后1到3个工作日原路退回"]),
    ("可以，在订单详情页申请电子发票。", ["可以在订单详情页申请电子发票即可。", "可以开发票。"]),
    ("订单满99元免运费", ["订单满 99 元免运费。"]),
    ("Café 咖啡很好喝！", ["café咖啡很好喝"]),
    ("完全无关的回答", ["自签收之日起7天内可以无理由退货。"]),
    ("", ["有内容"]),
    ("ＡＢＣ１２３，你好！", ["abc123 你好"]),
    ("请在App里点击“联系客服”。", ["在App里点击联系客服，输入转人工即可。"]),
    ("已发货的订单不能取消", ["已发货的订单不能取消，签收后可以申请退货。"]),
]

EN_CASES: list[tuple[str, list[str]]] = [
    ("The Eiffel Tower", ["Eiffel Tower"]),
    ("Paris, France.", ["Paris", "Paris, France"]),
    ("It was 1,234 dollars!", ["1234 dollars", "$1,234"]),
    ("Über café naïve", ["uber cafe naive", "Über café"]),
    ("running runners ran quickly", ["the runner runs quick"]),
    ("", ["something"]),
]


def score(name: str, prediction: str, references: list[str], **args: Any) -> MetricResult:
    return METRICS.build(name, args).unit(prediction, ExampleView(references=references))


# --- independent reference pieces --------------------------------------------------------------


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def ref_char_tokens(text: str) -> list[str]:
    """Written apart from suites.metrics.tokenize: Han characters alone, alnum runs as words."""
    out, word = [], ""
    for ch in text:
        if is_han(ch) or not ch.isalnum():
            if word:
                out.append(word)
                word = ""
            if is_han(ch):
                out.append(ch)
        else:
            word += ch
    return out + ([word] if word else [])


class RefCharTokenizer:
    def tokenize(self, text: str) -> list[str]:
        return ref_char_tokens(unicodedata.normalize("NFKC", text).lower())


def ref_normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def ref_f1(pred: list[str], ref: list[str]) -> float:
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(ref)
    return 2 * p * r / (p + r)


# --- the bug this fixes, stated ----------------------------------------------------------------


def test_default_tokenizers_get_chinese_wrong_and_auto_does_not() -> None:
    same = "我今天很忙。"
    assert score("rouge1", same, [same], tokenize="default").value == 0.0  # rouge-score keeps [a-z0-9]
    assert score("rouge1", same, [same]).value == 1.0
    pred, ref = "我今天很忙", "我今天非常忙。"
    assert score("bleu", pred, [ref], tokenize="default").value == 0.0  # 13a: one token each
    assert score("bleu", pred, [ref]).value == sacrebleu.sentence_bleu(pred, [ref], tokenize="zh").score > 0
    assert score("token_f1", pred, [ref], tokenize="default").value == 0.0
    assert score("token_f1", pred, [ref]).value > 0.5
    # ASCII-only punctuation removal keeps "，" and breaks exact match
    em = ("可以，在订单详情页申请电子发票。", ["可以在订单详情页申请电子发票"])
    assert score("exact_match", *em, tokenize="default").value == 0.0
    assert score("exact_match", *em).value == 1.0


# --- ROUGE vs rouge-score with the same tokenizer -----------------------------------------------


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL"])
@pytest.mark.parametrize("tokenize", ["auto", "char"])
def test_rouge_char_matches_rouge_score(rouge_type: str, tokenize: str) -> None:
    ref_scorer = rouge_scorer.RougeScorer([rouge_type], tokenizer=RefCharTokenizer())
    scorer = METRICS.build(rouge_type, {"tokenize": tokenize}).unit
    for pred, refs in ZH_CASES:
        expected = max(ref_scorer.score(r, pred)[rouge_type].fmeasure for r in refs)
        r = scorer(pred, ExampleView(refs))
        assert r.value == pytest.approx(expected, abs=TOL), (pred, refs)
        assert r.detail is not None and r.detail["tokenizer"] == "char"


class RefJiebaTokenizer:
    def tokenize(self, text: str) -> list[str]:
        words = jieba.lcut(unicodedata.normalize("NFKC", text).lower())
        return [w for w in words if any(ch.isalnum() for ch in w)]


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL"])
def test_rouge_jieba_matches_rouge_score(rouge_type: str) -> None:
    ref_scorer = rouge_scorer.RougeScorer([rouge_type], tokenizer=RefJiebaTokenizer())
    scorer = METRICS.build(rouge_type, {"tokenize": "jieba"}).unit
    for pred, refs in ZH_CASES:
        expected = max(ref_scorer.score(r, pred)[rouge_type].fmeasure for r in refs)
        r = scorer(pred, ExampleView(refs))
        assert r.value == pytest.approx(expected, abs=TOL), (pred, refs)
        assert r.detail is not None and r.detail["tokenizer"] == "jieba"


def test_jieba_segments_words_not_characters() -> None:
    # "北京大学" is one jieba word; char splits it, so the two tokenizers really differ.
    pred, ref = "我在北京大学读书", "我在北京读书"
    assert score("rouge1", pred, [ref], tokenize="jieba").value != score("rouge1", pred, [ref]).value


# --- BLEU / chrF vs sacrebleu ----------------------------------------------------------------------


@pytest.mark.parametrize(("tokenize", "sacrebleu_name"), [("auto", "zh"), ("char", "zh"), ("default", "13a")])
def test_bleu_chinese_matches_sacrebleu(tokenize: str, sacrebleu_name: str) -> None:
    scorer = METRICS.build("bleu", {"tokenize": tokenize}).unit
    for pred, refs in ZH_CASES:
        expected = sacrebleu.sentence_bleu(pred, refs, tokenize=sacrebleu_name).score
        r = scorer(pred, ExampleView(refs))
        assert r.value == pytest.approx(expected, abs=TOL), (pred, refs)
        assert r.detail is not None and r.detail["tokenize"] == sacrebleu_name


def test_bleu_jieba_is_sacrebleu_over_jieba_words() -> None:
    scorer = METRICS.build("bleu", {"tokenize": "jieba"}).unit

    def seg(t: str) -> str:
        return " ".join(w.strip() for w in jieba.lcut(t) if w.strip())

    for pred, refs in ZH_CASES:
        expected = sacrebleu.sentence_bleu(seg(pred), [seg(r) for r in refs], tokenize="none").score
        assert scorer(pred, ExampleView(refs)).value == pytest.approx(expected, abs=TOL)


def test_chrf_chinese() -> None:
    plain = METRICS.build("chrf", {}).unit
    plus = METRICS.build("chrf", {"word_order": 2}).unit
    for pred, refs in ZH_CASES:
        # character n-grams ignore whitespace: segmentation cannot change plain chrF
        assert plain(pred, ExampleView(refs)).value == pytest.approx(
            sacrebleu.sentence_chrf(pred, refs).score, abs=TOL
        )

        def seg(t: str) -> str:  # Han characters and marks alone, alnum runs as words
            spaced = "".join(c if c.isalnum() and not is_han(c) else f" {c} " for c in t)
            return " ".join(spaced.split())

        expected = sacrebleu.sentence_chrf(seg(pred), [seg(r) for r in refs], word_order=2).score
        assert plus(pred, ExampleView(refs)).value == pytest.approx(expected, abs=TOL), (pred, refs)


# --- EM / F1: Unicode normalisation ------------------------------------------------------------------


@pytest.mark.parametrize("tokenize", ["auto", "char"])
def test_token_f1_chinese_matches_reference(tokenize: str) -> None:
    for pred, refs in ZH_CASES:
        expected = max(
            ref_f1(ref_char_tokens(ref_normalize(pred)), ref_char_tokens(ref_normalize(r))) for r in refs
        )
        r = score("token_f1", pred, refs, tokenize=tokenize)
        assert r.value == pytest.approx(expected, abs=TOL), (pred, refs)
        assert r.detail is not None and r.detail["tokenizer"] == "char"


@pytest.mark.parametrize(
    ("pred", "ref", "args", "expected"),
    [
        ("可以，在订单详情页申请电子发票。", "可以在订单详情页申请电子发票", {}, 1.0),
        ("ＡＢＣ１２３，你好！", "abc123 你好", {}, 1.0),  # full-width forms and ideographic marks
        ("“你好”　世界", "你好世界", {}, 1.0),  # curly quotes, ideographic space
        ("你好世界", "你好 世界", {}, 1.0),  # spaces between CJK characters carry no meaning
        ("你好世界", "你好世界！", {"ignore_punctuation": False}, 0.0),
        ("退貨期限是多久", "退货期限是多久", {}, 0.0),
        ("退貨期限是多久", "退货期限是多久", {"to_simplified": True}, 1.0),
        ("我今天很忙", "我今天非常忙", {}, 0.0),
    ],
)
def test_exact_match_chinese(pred: str, ref: str, args: dict[str, Any], expected: float) -> None:
    r = score("exact_match", pred, [ref], **args)
    assert r.value == expected
    assert r.detail is not None and r.detail["tokenizer"] == "char"


def test_to_simplified_in_token_f1() -> None:
    pred, ref = "我們的客服", "我们的客服"
    assert score("token_f1", pred, [ref]).value < 1.0
    assert score("token_f1", pred, [ref], to_simplified=True).value == 1.0


# --- English: auto is exactly the reference behaviour ---------------------------------------------

TEXT_METRICS = ["exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "bleu", "chrf"]


@pytest.mark.parametrize("name", TEXT_METRICS)
def test_english_unchanged_by_auto(name: str) -> None:
    auto = METRICS.build(name, {}).unit
    default = METRICS.build(name, {"tokenize": "default"}).unit
    for pred, refs in EN_CASES:
        a, d = auto(pred, ExampleView(refs)), default(pred, ExampleView(refs))
        assert a.value == d.value, (name, pred)
        assert a.detail is not None and a.detail["tokenizer"] == "default"
    if name.startswith("rouge"):  # and default is rouge-score's own tokenizer
        ref = rouge_scorer.RougeScorer([name])
        for pred, refs in EN_CASES:
            expected = max(ref.score(r, pred)[name].fmeasure for r in refs)
            assert auto(pred, ExampleView(refs)).value == pytest.approx(expected, abs=TOL)
    if name == "bleu":
        for pred, refs in EN_CASES:
            assert auto(pred, ExampleView(refs)).value == sacrebleu.sentence_bleu(pred, refs).score


@pytest.mark.parametrize("name", TEXT_METRICS)
def test_every_text_metric_takes_tokenize(name: str) -> None:
    assert METRICS.build(name, {}).spec["args"]["tokenize"] == "auto"
    with pytest.raises(UserError) as e:
        METRICS.build(name, {"tokenize": "spaces"})
    assert e.value.field == "tokenize"


def test_english_scoring_never_loads_jieba() -> None:
    code = (
        "import sys\nfrom suites.metrics import METRICS, ExampleView\n"
        "for n in ['exact_match','token_f1','rouge1','rougeL','bleu','chrf']:\n"
        "    METRICS.build(n, {}).unit('the cat', ExampleView(['a cat']))\n"
        "    METRICS.build(n, {}).unit('我今天很忙', ExampleView(['我今天很忙']))\n"
        "print('jieba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # auto never needs jieba: it is loaded only when asked for


def test_jieba_dictionary_loads_once_per_process() -> None:
    from suites.metrics import tokenize as tk

    first = tk.jieba_module()
    assert first.dt.initialized
    assert tk.jieba_module() is first  # cached: no second dictionary load


# --- LLaMA-Factory preset --------------------------------------------------------------------------


def llamafactory_compute_similarity(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
    """LLaMA-Factory's ComputeSimilarity per-example scores, written out step by step."""
    score_dict: dict[str, list[float]] = {"rouge-1": [], "rouge-2": [], "rouge-l": [], "bleu-4": []}
    for pred, label in pairs:
        hypothesis = list(jieba.cut(pred))
        reference = list(jieba.cut(label))
        if len(" ".join(hypothesis).split()) == 0 or len(" ".join(reference).split()) == 0:
            result = {"rouge-1": {"f": 0.0}, "rouge-2": {"f": 0.0}, "rouge-l": {"f": 0.0}}
        else:
            result = Rouge().get_scores(" ".join(hypothesis), " ".join(reference))[0]
        for k, v in result.items():
            score_dict[k].append(round(v["f"] * 100, 4))
        bleu_score = sentence_bleu([list(label)], list(pred), smoothing_function=SmoothingFunction().method3)
        score_dict["bleu-4"].append(round(bleu_score * 100, 4))
    return score_dict


def test_llamafactory_preset_reproduces_compute_similarity(tmp_path) -> None:
    from suites import load_suite

    pairs = [(p, refs[0]) for p, refs in ZH_CASES] + [(p, refs[0]) for p, refs in EN_CASES]
    expected = llamafactory_compute_similarity(pairs)
    data = "".join(
        json.dumps({"id": str(i), "q": "x", "a": label}, ensure_ascii=False) + "\n"
        for i, (_, label) in enumerate(pairs)
    )
    (tmp_path / "d.jsonl").write_text(data, encoding="utf-8")
    (tmp_path / "s.yaml").write_text(
        "name: lf\nkind: task\ndata: d.jsonl\nprompt: '{{ q }}'\nreference: a\nmetrics: [llamafactory]\n"
    )
    suite = load_suite(tmp_path / "s.yaml")
    assert [m.name for m in suite.metrics] == ["rouge-1", "rouge-2", "rouge-l", "bleu-4"]
    for m in suite.metrics:
        got = [m.scorer(pred, ExampleView([label])).value for pred, label in pairs]
        assert got == pytest.approx(expected[m.name], abs=TOL), m.name
        assert statistics.fmean(got) == pytest.approx(statistics.fmean(expected[m.name]), abs=TOL)
    assert max(expected["rouge-l"]) == 100.0 and min(expected["bleu-4"]) < 100.0  # the pairs vary


# --- #21: to_simplified and tokenize on every text metric, corpus metrics included -----------------

TRAD, SIMP = "我們的客服會在三個工作日內處理退款。", "我们的客服会在三个工作日内处理退款。"


@pytest.mark.parametrize("name", ["rouge1", "rougeL", "bleu", "chrf", "corpus_bleu", "corpus_chrf"])
def test_to_simplified_on_every_text_metric(name: str) -> None:
    plain, t2s = score(name, TRAD, [SIMP]), score(name, TRAD, [SIMP], to_simplified=True)
    same = score(name, SIMP, [SIMP])
    assert plain.value is not None and plain.value < same.value  # traditional ≠ simplified by default
    assert t2s.value == pytest.approx(same.value, abs=TOL)  # …and equal once converted (t2s)
    assert METRICS.build(name, {}).spec["args"]["to_simplified"] is False


def test_corpus_bleu_follows_tokenize_auto_like_bleu() -> None:
    from harness import corpus
    from harness.stats import ScoreArrays, aggregate

    hyps = [p for p, _ in ZH_CASES if p]
    refs = [r[0] for p, r in ZH_CASES if p]
    built = METRICS.build("corpus_bleu", {})
    assert built.spec["args"]["tokenize"] == "auto"
    rows = [built.unit(h, ExampleView([r])) for h, r in zip(hyps, refs)]
    arr = ScoreArrays(
        [r.value for r in rows],
        stats=[r.detail["stats"] for r in rows],
        corpus=corpus.statistic("corpus_bleu", built.spec["args"]),
    )
    expected = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
    assert aggregate(arr, "corpus_bleu") == pytest.approx(expected, abs=TOL)
    assert expected != pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)  # 13a differs on zh
    assert "tok:auto(zh|13a)" in rows[0].detail["signature"]
    # English references under auto: sacreBLEU's 13a, number for number
    en_h, en_r = ["the cat sat on the mat", "a dog"], ["the cat is on the mat", "the dog"]
    en = [built.unit(h, ExampleView([r])) for h, r in zip(en_h, en_r)]
    en_arr = ScoreArrays([r.value for r in en], stats=[r.detail["stats"] for r in en], corpus=arr.corpus)
    assert aggregate(en_arr, "corpus_bleu") == pytest.approx(
        sacrebleu.corpus_bleu(en_h, [en_r]).score, abs=TOL
    )
