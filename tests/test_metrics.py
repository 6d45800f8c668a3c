"""Task metrics checked against the reference implementations they claim to reproduce."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from typing import Any

import pytest
import sacrebleu
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from rouge_score import rouge_scorer

from harness.errors import UserError
from suites.metrics import METRICS, ExampleView, MetricResult

TOL = 1e-9


def score(name: str, prediction: str, references: list[str], **args: Any) -> MetricResult:
    return METRICS.build(name, args).unit(prediction, ExampleView(references=references))


# --- official SQuAD v1.1 evaluation functions (evaluate-v1.1.py), copied verbatim in logic ---


def squad_normalize_answer(s: str) -> str:
    def remove_articles(text: str) -> str:
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text: str) -> str:
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction: str, ground_truth: str) -> float:
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_exact_match_score(prediction: str, ground_truth: str) -> bool:
    return squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn: Any, prediction: str, ground_truths: list[str]) -> float:
    return max(metric_fn(prediction, gt) for gt in ground_truths)


# (prediction, references) pairs shared by the reference-based metrics.
CASES: list[tuple[str, list[str]]] = [
    ("The Eiffel Tower", ["Eiffel Tower"]),
    ("the cat sat on the mat", ["a cat sat on a mat"]),
    ("Paris, France.", ["Paris", "Paris, France"]),
    ("  New   York City ", ["new york", "NYC", "New York City"]),
    ("It was 1,234 dollars!", ["1234 dollars", "$1,234"]),
    ("completely different", ["nothing in common"]),
    ("", ["something"]),
    ("something", [""]),
    (
        "The quick brown fox jumps over the lazy dog",
        ["A quick brown dog jumps over the lazy fox", "the fox"],
    ),
    ("running runners ran quickly", ["the runner runs quick", "run run run"]),
    ("Anne's answer: the theorem holds.", ["the theorem holds", "Anne answered"]),
    ("Über café naïve", ["uber cafe naive", "Über café"]),
]


# --- registry contract ---------------------------------------------------------------------

EXPECTED = {
    "exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "bleu", "chrf", "json_valid",
    "json_schema", "regex_match", "contains", "accuracy", "macro_f1",
}  # fmt: skip


def test_all_metrics_registered_with_info_and_docstring() -> None:
    assert EXPECTED <= set(METRICS.names())
    for name in EXPECTED:
        entry = METRICS.get(name)
        assert isinstance(entry.info["higher_is_better"], bool)
        assert entry.info["aggregation"] in ("mean", "macro_f1")
        assert isinstance(entry.info["binary"], bool)
        doc = (entry.factory.__doc__ or "").strip()
        assert doc and "\n" not in doc, name
    assert METRICS.get("macro_f1").info["aggregation"] == "macro_f1"
    binary = {n for n in EXPECTED if METRICS.get(n).info["binary"]}
    assert binary == {"exact_match", "json_valid", "json_schema", "regex_match", "contains",
                      "accuracy", "macro_f1"}  # fmt: skip


def test_spec_records_defaults() -> None:
    built = METRICS.build("exact_match", {"ignore_articles": True})
    assert built.spec == {
        "name": "exact_match",
        "args": {"normalization": "options",
                 "ignore_case": True, "ignore_punctuation": True, "ignore_articles": True,
                 "collapse_whitespace": True, "tokenize": "auto", "to_simplified": False},
    }  # fmt: skip
    json.dumps(METRICS.build("json_schema", {"schema": {"type": "object"}}).spec)


# --- exact_match / token_f1 vs SQuAD v1.1 ----------------------------------------------------


@pytest.mark.parametrize(("pred", "refs"), CASES)
def test_exact_match_matches_squad(pred: str, refs: list[str]) -> None:
    r = score("exact_match", pred, refs, ignore_articles=True)
    expected = metric_max_over_ground_truths(squad_exact_match_score, pred, refs)
    assert r.value == float(expected)
    # auto on English references is SQuAD's normalisation, and says so.
    assert r.detail == {"normalized_prediction": squad_normalize_answer(pred), "tokenizer": "default"}


@pytest.mark.parametrize(("pred", "refs"), CASES)
def test_token_f1_matches_squad(pred: str, refs: list[str]) -> None:
    r = score("token_f1", pred, refs)
    expected = metric_max_over_ground_truths(squad_f1_score, pred, refs)
    assert r.error is None
    assert r.value == pytest.approx(expected, abs=TOL)


def test_token_f1_multi_reference_takes_max() -> None:
    refs = ["blue whale", "the blue whale of the pacific ocean"]
    single = [score("token_f1", "blue whale ocean", [r]).value for r in refs]
    assert score("token_f1", "blue whale ocean", refs).value == max(single)
    assert min(single) < max(single)


@pytest.mark.parametrize(
    ("pred", "ref", "args", "expected"),
    [
        ("Paris", "paris", {}, 1.0),
        ("Paris", "paris", {"ignore_case": False}, 0.0),
        ("Paris!", "Paris", {}, 1.0),
        ("Paris!", "Paris", {"ignore_punctuation": False}, 0.0),
        ("the Paris", "Paris", {}, 0.0),
        ("the Paris", "Paris", {"ignore_articles": True}, 1.0),
        ("The Paris", "Paris", {"ignore_articles": True, "ignore_case": False}, 1.0),
        (" Paris \n", "Paris", {}, 1.0),
        (" Paris \n", "Paris", {"collapse_whitespace": False}, 0.0),
        ("New  York", "new york", {}, 1.0),
        ("theatre", "atre", {"ignore_articles": True}, 0.0),  # articles are whole words only
    ],
)
def test_exact_match_options(pred: str, ref: str, args: dict[str, Any], expected: float) -> None:
    assert score("exact_match", pred, [ref], **args).value == expected


def test_exact_match_multi_reference() -> None:
    assert score("exact_match", "NYC", ["New York", "nyc"]).value == 1.0
    assert score("exact_match", "NYC", ["New York", "LA"]).value == 0.0


# --- ROUGE vs rouge_score --------------------------------------------------------------------


@pytest.mark.parametrize("rouge_type", ["rouge1", "rouge2", "rougeL"])
@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_matches_rouge_score(rouge_type: str, use_stemmer: bool) -> None:
    ref_scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)
    scorer = METRICS.build(rouge_type, {"use_stemmer": use_stemmer}).unit
    for pred, refs in CASES:
        # Max over references computed independently of score_multi.
        expected = max(ref_scorer.score(r, pred)[rouge_type].fmeasure for r in refs)
        r = scorer(pred, ExampleView(refs))
        assert r.value == pytest.approx(expected, abs=TOL), (pred, refs)


def test_rouge_stemmer_changes_scores() -> None:
    pred, refs = "running runners ran quickly", ["the runner runs quick"]
    assert score("rouge1", pred, refs, use_stemmer=True).value > score("rouge1", pred, refs).value


# --- BLEU / chrF vs sacrebleu ----------------------------------------------------------------


# Our names (auto/default/char) map to sacrebleu's 13a/13a/zh; other sacrebleu names pass through.
@pytest.mark.parametrize(
    ("tokenize", "sacrebleu_name"),
    [("auto", "13a"), ("default", "13a"), ("char", "zh"), ("13a", "13a"), ("intl", "intl"),
     ("none", "none"), ("zh", "zh")],
)  # fmt: skip
@pytest.mark.parametrize("lowercase", [False, True])
def test_bleu_matches_sentence_bleu(tokenize: str, sacrebleu_name: str, lowercase: bool) -> None:
    # One scorer over all cases in turn: the reused BLEU object must not carry state over.
    scorer = METRICS.build("bleu", {"tokenize": tokenize, "lowercase": lowercase}).unit
    for pred, refs in CASES:
        expected = sacrebleu.sentence_bleu(pred, refs, tokenize=sacrebleu_name, lowercase=lowercase).score
        r = scorer(pred, ExampleView(refs))
        assert r.value == pytest.approx(expected, abs=TOL), (pred, refs)
        assert r.value == expected  # the same computation, so bit-identical
        assert r.detail is not None and r.detail["tokenize"] == sacrebleu_name


def test_bleu_multi_reference_uses_all_references() -> None:
    pred = "the cat is on the mat"
    refs = ["there is a cat on the mat", "the cat sits on the mat"]
    both = score("bleu", pred, refs).value
    assert both == sacrebleu.sentence_bleu(pred, refs).score
    assert both >= max(score("bleu", pred, [r]).value for r in refs)


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"word_order": 2},
        {"char_order": 4, "beta": 1},
        {"char_order": 0, "word_order": 2},
        {"beta": 3},
    ],
)
def test_chrf_matches_sentence_chrf(args: dict[str, Any]) -> None:
    scorer = METRICS.build("chrf", args).unit
    for pred, refs in CASES:
        expected = sacrebleu.sentence_chrf(pred, refs, **args).score
        assert scorer(pred, ExampleView(refs)).value == pytest.approx(expected, abs=TOL), (
            pred,
            refs,
        )


# --- contains ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "refs", "args", "expected"),
    [
        ("The answer is Paris.", ["paris"], {}, 1.0),
        ("The answer is Paris.", ["paris"], {"ignore_case": False}, 0.0),
        ("The answer is Paris.", ["London", "Paris"], {}, 1.0),
        ("The answer is Rome.", ["London", "Paris"], {}, 0.0),
        ("anything", ["", "Paris"], {}, 0.0),  # an empty reference matches nothing
    ],
)
def test_contains(pred: str, refs: list[str], args: dict[str, Any], expected: float) -> None:
    assert score("contains", pred, refs, **args).value == expected


# --- reference-based metrics without references: error, never 0 ------------------------------

REF_METRICS: list[tuple[str, dict[str, Any]]] = [
    ("exact_match", {}),
    ("token_f1", {}),
    ("rouge1", {}),
    ("rouge2", {}),
    ("rougeL", {}),
    ("bleu", {}),
    ("chrf", {}),
    ("contains", {}),
    ("accuracy", {"labels": ["yes", "no"]}),
    ("macro_f1", {"labels": ["yes", "no"]}),
]


@pytest.mark.parametrize(("name", "args"), REF_METRICS)
def test_no_reference_is_an_error_not_zero(name: str, args: dict[str, Any]) -> None:
    r = score(name, "yes", [], **args)
    assert r.value is None
    assert r.error


def test_contains_only_empty_references_is_error() -> None:
    r = score("contains", "x", ["", "  "])
    assert r.value is None and r.error


# --- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "extract", "expected"),
    [
        ('{"a": 1}', True, 1.0),
        ("  [1, 2, 3]\n", False, 1.0),
        ("42", False, 1.0),
        ('Here you go:\n```json\n{"a": [1, 2]}\n```\nHope it helps.', True, 1.0),
        ('Here you go:\n```json\n{"a": [1, 2]}\n```\nHope it helps.', False, 0.0),
        ('```\n{"a": 1}\n```', True, 1.0),
        ('Sure! The result is {"name": "x", "tags": ["a"]} as requested.', True, 1.0),
        ('Use {braces} like {"ok": true} here', True, 1.0),  # first *decodable* one
        ('{"a": 1', True, 0.0),
        ("no json here", True, 0.0),
        ('{"a": NaN}', False, 0.0),  # NaN is not JSON, though Python's json accepts it
        ('{"a": 1} trailing', False, 0.0),
        ("[" * 100_000, True, 0.0),  # deep nesting must not crash
        ("", True, 0.0),
    ],
)
def test_json_valid(output: str, extract: bool, expected: float) -> None:
    r = score("json_valid", output, [], extract=extract)
    assert r.error is None
    assert r.value == expected
    if expected == 0.0:
        assert r.detail and r.detail["parse_error"]


def test_json_valid_prefers_fence_over_prose_braces() -> None:
    out = 'Note: {} is empty.\n```json\n{"a": 1}\n```'
    r = score("json_valid", out, [])
    assert r.value == 1.0 and r.detail == {"source": "fence"}


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    "obj",
    [
        {"name": "a", "age": 3},
        {"name": "a", "age": 3, "tags": ["x", "y"]},
        {"name": "a"},
        {"name": "a", "age": -1},
        {"name": "a", "age": 3, "tags": ["x", 2]},
        {"name": "a", "age": 3, "extra": 1},
        {"name": 1, "age": "3"},
        [1, 2],
    ],
)
def test_json_schema_matches_jsonschema(obj: Any) -> None:
    validator = Draft202012Validator(SCHEMA)
    output = f"Answer:\n```json\n{json.dumps(obj)}\n```"
    r = score("json_schema", output, [], schema=SCHEMA)
    assert r.value == float(validator.is_valid(obj))
    if r.value == 0.0:
        assert r.detail and r.detail["validation_error"] == best_match(validator.iter_errors(obj)).message


def test_json_schema_unparseable_is_zero_with_detail() -> None:
    r = score("json_schema", "not json", [], schema=SCHEMA)
    assert r.value == 0.0 and r.detail and "parse_error" in r.detail
    r = score("json_schema", 'x {"name": "a", "age": 1}', [], schema=SCHEMA, extract=False)
    assert r.value == 0.0


def test_json_schema_uses_2020_12() -> None:
    # prefixItems exists only from draft 2020-12 on.
    schema = {"type": "array", "prefixItems": [{"type": "integer"}], "items": False}
    assert score("json_schema", "[1]", [], schema=schema).value == 1.0
    assert score("json_schema", '["x"]', [], schema=schema).value == 0.0
    assert score("json_schema", "[1, 2]", [], schema=schema).value == 0.0


# --- regex_match -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "args", "expected"),
    [
        ("The answer is 42.", {"pattern": r"\d+"}, 1.0),
        ("The answer is 42.", {"pattern": r"\d+", "fullmatch": True}, 0.0),
        ("  42\n", {"pattern": r"\d+", "fullmatch": True}, 1.0),  # output is stripped
        ("YES", {"pattern": "yes"}, 0.0),
        ("YES", {"pattern": "yes", "ignore_case": True}, 1.0),
        ("A) foo", {"pattern": r"^[A-D]\)", "fullmatch": False}, 1.0),
    ],
)
def test_regex_match(output: str, args: dict[str, Any], expected: float) -> None:
    r = score("regex_match", output, [], **args)
    assert r.value == expected
    flags = re.IGNORECASE if args.get("ignore_case") else 0
    fn = re.fullmatch if args.get("fullmatch") else re.search
    assert expected == float(fn(args["pattern"], output.strip(), flags) is not None)


# --- classification ---------------------------------------------------------------------------

NLI = ["entailment", "not entailment"]
SENTIMENT = ["positive", "negative", "neutral"]


@pytest.mark.parametrize(
    ("output", "labels", "args", "pred"),
    [
        ("Positive.", SENTIMENT, {}, "positive"),
        ("  NEGATIVE!! ", SENTIMENT, {}, "negative"),
        ("NEGATIVE", SENTIMENT, {"ignore_case": False}, None),
        ("The sentiment is negative, not positive.", SENTIMENT, {}, "negative"),
        ("I think it's neutral overall", SENTIMENT, {}, "neutral"),
        ("**positive**", SENTIMENT, {}, "positive"),
        ("not entailment", NLI, {}, "not entailment"),
        ("Answer: not entailment.", NLI, {}, "not entailment"),  # tie-break: longer label
        ("entailment", NLI, {}, "entailment"),
        ("Nonpositive outlook", SENTIMENT, {}, None),  # whole words only
        ("positively", SENTIMENT, {}, None),
        ("I cannot tell.", SENTIMENT, {}, None),
        ("", SENTIMENT, {}, None),
        ("Choice: n/a", ["n/a", "a"], {}, "n/a"),
    ],
)
def test_label_extraction(output: str, labels: list[str], args: dict[str, Any], pred: str | None) -> None:
    ref = labels[0]
    for name in ("accuracy", "macro_f1"):
        r = score(name, output, [ref], labels=labels, **args)
        assert r.error is None
        assert r.detail is not None
        assert r.detail["pred"] == pred
        assert r.detail["label"] == ref
        assert r.value == float(pred == ref)
        if pred is None:
            assert r.detail["reason"]


def test_classification_uses_canonical_label_spelling() -> None:
    r = score("accuracy", "yes", ["YES"], labels=["Yes", "No"])
    assert r.value == 1.0 and r.detail == {"pred": "Yes", "label": "Yes"}


@pytest.mark.parametrize("name", ["accuracy", "macro_f1"])
def test_reference_outside_label_set_is_error(name: str) -> None:
    r = score(name, "positive", ["mixed"], labels=SENTIMENT)
    assert r.value is None and r.error and "mixed" in r.error
    # Case folding applies to references too, unless disabled.
    assert score(name, "positive", ["Positive"], labels=SENTIMENT).error is None
    assert score(name, "positive", ["Positive"], labels=SENTIMENT, ignore_case=False).error


# --- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("exact_match", {"lowercase": True}, "lowercase"),
        ("token_f1", {"ignore_case": True}, "ignore_case"),
        ("regex_match", {"pattern": "(unclosed"}, "pattern"),
        ("regex_match", {}, "pattern"),
        ("json_schema", {"schema": {"type": "nonsense"}}, "schema"),
        ("json_schema", {"schema": {"properties": {"a": {"minimum": "zero"}}}}, "schema"),
        ("json_schema", {"schema": "not a dict"}, "schema"),
        ("accuracy", {"labels": "positive"}, "labels"),
        ("accuracy", {"labels": []}, "labels"),
        ("macro_f1", {"labels": ["a", "A"]}, "labels"),
        ("macro_f1", {"labels": ["a", " "]}, "labels"),
        ("accuracy", {}, "labels"),
        ("bleu", {"tokenize": "moses"}, "tokenize"),
        ("bleu", {"lowercase": "maybe"}, "lowercase"),
        ("chrf", {"char_order": -1}, "char_order"),
        ("chrf", {"char_order": 0, "word_order": 0}, "char_order"),
        ("chrf", {"beta": 0}, "beta"),
        ("rouge1", {"use_stemmer": [1]}, "use_stemmer"),
    ],
)
def test_bad_config_raises_user_error(name: str, args: dict[str, Any], field: str) -> None:
    with pytest.raises(UserError) as exc:
        METRICS.build(name, args)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_unknown_metric_suggests_name() -> None:
    with pytest.raises(UserError, match="exact_match"):
        METRICS.build("exact_mach", {})


# --- binary metrics stay 0/1 ------------------------------------------------------------------


def test_binary_metrics_only_produce_zero_or_one() -> None:
    builds = {
        "exact_match": {},
        "contains": {},
        "json_valid": {},
        "json_schema": {"schema": SCHEMA},
        "regex_match": {"pattern": "a"},
        "accuracy": {"labels": ["a", "b"]},
        "macro_f1": {"labels": ["a", "b"]},
    }
    for name, args in builds.items():
        assert METRICS.get(name).info["binary"]
        scorer = METRICS.build(name, args).unit
        for pred, _ in CASES:
            r = scorer(pred, ExampleView(["a"]))
            assert r.value in (0.0, 1.0), (name, pred)


def test_json_extraction_gives_up_after_candidate_cap() -> None:
    from suites.metrics.structured import MAX_CANDIDATES

    found = score("json_valid", "x{" * (MAX_CANDIDATES - 1) + "[1]", [])
    assert found.value == 1.0
    lost = score("json_valid", "x{" * MAX_CANDIDATES + "[1]", [])
    assert lost.value == 0.0 and lost.detail and str(MAX_CANDIDATES) in lost.detail["parse_error"]
