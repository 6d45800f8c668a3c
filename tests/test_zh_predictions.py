"""Scoring predictions made elsewhere: `predictions:FILE` / `tunegate score`, on the Chinese suite.

No model is loaded anywhere in this file: that is the point of a predictions file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.evaluate import evaluate_runs as evaluate
from harness.runner import RunOptions
from harness.store import Store
from suites import load_suite
from tests.conftest import run_cli, table_dump, write_suite

SUITE = load_suite("zh-support")
EXAMPLES = SUITE.examples


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def good_records(wrong_every: int = 3) -> list[dict]:
    """Every `wrong_every`-th answer is off; the rest are the references, so scores vary."""
    return [
        {"id": ex.id, "output": "我不知道。" if i % wrong_every == 0 else ex.references[0]}
        for i, ex in enumerate(EXAMPLES)
    ]


def quiet(db: Path, spec: str, suites: list[str], **kw) -> list:
    return evaluate(spec, suites, db, RunOptions(**kw))


def test_round_trip_stores_outputs_scores_and_tokenizer(tmp_path):
    preds = write_jsonl(tmp_path / "preds.jsonl", good_records())
    db = tmp_path / "t.duckdb"
    [out] = quiet(db, f"predictions:{preds}", ["zh-support"])
    assert out.n_examples == len(EXAMPLES) and out.n_errors == 0 and out.model_calls == 0
    with Store(db) as s:
        kind, fp = s.db.execute(
            "SELECT m.kind, m.fingerprint FROM runs r JOIN models m USING (model_id) WHERE run_id = ?",
            [out.run_id],
        ).fetchone()
        assert kind == "predictions"
        assert fp == hashlib.sha256(b"predictions\0" + hashlib.sha256(preds.read_bytes()).hexdigest().encode()
                                    + b"options\0{}").hexdigest()  # fmt: skip
        outputs = dict(
            s.db.execute(
                "SELECT re.example_id, g.output FROM run_examples re JOIN generations g USING (cache_key)"
                " WHERE re.run_id = ?",
                [out.run_id],
            ).fetchall()
        )
        assert outputs == {r["id"]: r["output"] for r in good_records()}
        em = s.scores(out.run_id, "exact_match")
        assert [v for _, v, *_ in em] == [0.0 if i % 3 == 0 else 1.0 for i in range(len(EXAMPLES))]
        # every score says which tokenizer produced it: Chinese references → char / sacrebleu zh
        for metric in ("exact_match", "token_f1", "rouge1", "rougeL", "bleu", "chrf"):
            details = [d for *_, d in s.scores(out.run_id, metric)]
            assert all(d["tokenizer"] == "char" for d in details), metric
        assert {d["tokenize"] for *_, d in s.scores(out.run_id, "bleu")} == {"zh"}

    # the same content at another path: same model, outputs from the cache
    copy = tmp_path / "elsewhere" / "copy.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(preds.read_bytes())
    [again] = quiet(db, f"predictions:{copy}", ["zh-support"])
    assert again.n_cached == len(EXAMPLES)
    # an edited file is a different "model"
    edited = write_jsonl(tmp_path / "preds.jsonl", good_records(wrong_every=2))
    [third] = quiet(db, f"predictions:{edited}", ["zh-support"])
    with Store(db) as s:
        models = {
            r[0] for r in s.db.execute("SELECT model_id FROM runs WHERE run_id IN (?, ?, ?)",
                                       [out.run_id, again.run_id, third.run_id]).fetchall()
        }  # fmt: skip
    assert len(models) == 2


def test_same_prompt_different_predictions_are_not_shared(tmp_path):
    data = '{"id": "a", "q": "同一个问题", "r": "甲"}\n{"id": "b", "q": "同一个问题", "r": "乙"}\n'
    suite = write_suite(tmp_path / "s", "name: dup\nkind: task\ndata: data.jsonl\nprompt: '{{ q }}'\n"
                        "reference: r\nmetrics: [exact_match]\n", data)  # fmt: skip
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "output": "甲"}, {"id": "b", "output": "乙"}])
    [out] = quiet(tmp_path / "t.duckdb", f"predictions:{preds}", [str(suite)])
    with Store(tmp_path / "t.duckdb") as s:
        assert [v for _, v, *_ in s.scores(out.run_id, "exact_match")] == [1.0, 1.0]


def test_null_prediction_is_an_error_not_zero(tmp_path):
    recs = good_records()
    recs[4]["output"] = None
    preds = write_jsonl(tmp_path / "p.jsonl", recs)
    [out] = quiet(tmp_path / "t.duckdb", f"predictions:{preds}", ["zh-support"])
    assert out.n_errors == 1
    with Store(tmp_path / "t.duckdb") as s:
        row = [r for r in s.scores(out.run_id, "token_f1") if r[0] == EXAMPLES[4].id][0]
        assert row[1] is None and "line 5" in row[3]


def test_llamafactory_generated_predictions_match_by_order(tmp_path):
    suite = write_suite(  # the data beside the suite file: a suite reads only inside its folder
        tmp_path / "s",
        "name: lf\nkind: task\ndata: data.jsonl\nprompt: '{{ question }}'\n"
        "reference: answer\nmetrics: [llamafactory, token_f1]\n",
        SUITE.data_path().read_text(encoding="utf-8"),
    )
    recs = [
        {
            "prompt": f"user\n{ex.record['question']}",
            "predict": ex.references[0][:-3],
            "label": ex.references[0],
        }
        for ex in EXAMPLES
    ]
    preds = write_jsonl(tmp_path / "generated_predictions.jsonl", recs)
    [out] = quiet(tmp_path / "t.duckdb", f"predictions:{preds}", [str(suite)])
    assert out.n_errors == 0
    from suites.metrics.llamafactory import lf_rouge

    with Store(tmp_path / "t.duckdb") as s:
        got = {eid: v for eid, v, *_ in s.scores(out.run_id, "rouge-l")}
    for ex, rec in zip(EXAMPLES, recs):
        assert got[ex.id] == lf_rouge(rec["predict"], rec["label"])["rouge-l"]
    assert 0 < min(got.values()) < 100


def test_order_match_warns_when_labels_disagree(tmp_path, caplog):
    recs = [{"predict": "x", "label": ex.references[0]} for ex in EXAMPLES]
    recs[0], recs[1] = recs[1], recs[0]  # shuffled: labels no longer line up with the suite
    preds = write_jsonl(tmp_path / "p.jsonl", recs)
    with caplog.at_level("WARNING"):
        quiet(tmp_path / "t.duckdb", f"predictions:{preds}", ["zh-support"])
    assert "2 prediction label(s) differ" in caplog.text


def test_compare_and_gate_treat_predictions_like_models(tmp_path):
    base = write_jsonl(tmp_path / "base.jsonl", good_records(wrong_every=2))
    cand = write_jsonl(tmp_path / "cand.jsonl", good_records(wrong_every=10))
    db = tmp_path / "t.duckdb"
    r = run_cli(
        "score", "--predictions", str(base), "--suite", "zh-support", "--db", str(db), "--no-progress"
    )
    assert r.returncode == 0, r.stderr
    quiet(db, f"predictions:{cand}", ["zh-support"])
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {suite: zh-support, metric: token_f1, min_delta: 0.05}\n")
    ok = run_cli("gate", "--baseline", f"predictions:{base}", "--candidate", f"predictions:{cand}",
                 "--policy", str(policy), "--db", str(db))  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = run_cli("gate", "--baseline", f"predictions:{cand}", "--candidate", f"predictions:{base}",
                  "--policy", str(policy), "--db", str(db))  # fmt: skip
    assert bad.returncode == 1, bad.stdout + bad.stderr


# --- malformed input: a clear error naming the problem, exit 2, store untouched ---------------


def _bad_cases() -> list[tuple[str, list[dict] | str, str, str]]:
    ids = [ex.id for ex in EXAMPLES]
    good = good_records()
    return [
        ("missing id", good[:-1], "", f"no prediction for example '{ids[-1]}'"),
        ("extra id", [*good, {"id": "zh-999", "output": "x"}], "", "id 'zh-999' is not an example"),
        ("duplicate id", [*good[:3], good[1], *good[3:]], "", f"duplicate id '{ids[1]}' (first on line 2)"),
        ("no id", [{"output": "x"}, *good[1:]], "", "record has no 'id'"),
        ("no output field", [{"id": ids[0], "text": "x"}, *good[1:]], "", "no prediction field"),
        ("output not a string", [{"id": ids[0], "output": 3}, *good[1:]], "", "expected a string or null"),
        ("bad json", '{"id": "zh-001", "output": \n', "", "not valid JSON"),
        ("empty file", "", "", "predictions file is empty"),
        ("order: too many", [*good, {"output": "x"}], "?match=order", "31 predictions but the suite has 30"),
        ("order: too few", good[:-2], "?match=order", f"example '{ids[-2]}' has no prediction"),
        ("bad match", good, "?match=fuzzy", "match must be one of id, order"),
        ("unknown option", good, "?dtype=bfloat16", "unknown option 'dtype'"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_malformed_predictions_are_user_errors_and_store_is_untouched(tmp_path, case):
    _, records, query, message = case
    db = tmp_path / "t.duckdb"
    quiet(db, f"predictions:{write_jsonl(tmp_path / 'ok.jsonl', good_records())}", ["zh-support"])
    before = table_dump(db)
    bad = tmp_path / "bad.jsonl"
    if isinstance(records, str):
        bad.write_text(records, encoding="utf-8")
    else:
        write_jsonl(bad, records)
    with pytest.raises(UserError) as e:
        quiet(db, f"predictions:{bad}{query}", ["zh-support"])
    assert message in str(e.value)
    assert table_dump(db) == before


def test_cli_exit_codes_for_bad_predictions(tmp_path):
    db = tmp_path / "t.duckdb"
    quiet(db, f"predictions:{write_jsonl(tmp_path / 'ok.jsonl', good_records())}", ["zh-support"])
    before = table_dump(db)
    dup = write_jsonl(tmp_path / "dup.jsonl", [*good_records(), good_records()[0]])
    r = run_cli("score", "--predictions", str(dup), "--suite", "zh-support", "--db", str(db))
    assert r.returncode == 2 and "duplicate id 'zh-001'" in r.stderr
    r = run_cli("run", "--model", f"predictions:{tmp_path / 'ok.jsonl'}", "--suite", "heldout-text",
                "--db", str(db))  # fmt: skip
    assert r.returncode == 2 and "perplexity suite" in r.stderr
    r = run_cli(
        "score", "--predictions", str(tmp_path / "nope.jsonl"), "--suite", "zh-support", "--db", str(db)
    )
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert table_dump(db) == before


def test_limit_needs_predictions_only_for_the_examples_run(tmp_path):
    preds = write_jsonl(tmp_path / "p.jsonl", good_records()[:5])
    [out] = quiet(tmp_path / "t.duckdb", f"predictions:{preds}", ["zh-support"], limit=5)
    assert out.n_examples == 5 and out.n_errors == 0


def test_zh_support_runs_on_the_model_and_compares_with_predictions(tmp_path, smollm2):
    from harness.results import compare_runs
    from harness.runner import run_suite

    with Store(tmp_path / "t.duckdb") as store:
        model_run = run_suite(store, smollm2, SUITE, RunOptions(limit=4, batch_size=4))
        assert model_run.n_examples == 4 and model_run.n_errors == 0 and model_run.model_calls > 0
        details = [d for *_, d in store.scores(model_run.run_id, "rougeL")]
        assert [d["tokenizer"] for d in details] == ["char"] * 4
    preds = write_jsonl(tmp_path / "p.jsonl", good_records())
    [pred_run] = quiet(tmp_path / "t.duckdb", f"predictions:{preds}", ["zh-support"], limit=4)
    with Store(tmp_path / "t.duckdb") as store:
        _, _, rows = compare_runs(store, model_run.run_id, pred_run.run_id)
    by_metric = {c.metric: c for c in rows}
    assert by_metric["token_f1"].paired.n == 4
