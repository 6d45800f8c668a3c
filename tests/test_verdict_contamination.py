"""Train↔eval contamination: planted copies found by the right method, clean records never
flagged, stored scans used by show/compare/gate/report on real stored runs, bad input exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness.store import Store
from suites import load_suite
from tests.conftest import run_cli, table_dump, write_suite
from trainers.contamination import _Side, scan, signatures, tokens

QA = load_suite("finetune-qa")
ZH = load_suite("zh-support")
TEXT = load_suite("heldout-text")


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _planted(tmp: Path) -> tuple[Path, dict[int, tuple[str, str, str]]]:
    """Training records (line → (suite, example id, method that must find it)) plus clean ones."""
    exact, para = QA.examples[3], QA.examples[7]
    words = para.record["question"].split()
    # a paraphrase: another opening word (true bigram Jaccard 0.73 with the example: far enough
    # above the 0.5 threshold that the 64-permutation estimate, sd ~0.06, lands above it)
    words[0] = "Tell me:"
    paragraph = TEXT.examples[4].record["text"].split()
    zh = ZH.examples[5]
    records = [
        {"instruction": exact.record["question"], "output": "Something unrelated to the answer."},
        {"instruction": " ".join(words), "output": para.references[0] + " indeed"},
        {
            "instruction": "Continue the story.",
            "output": "Once upon a time. " + " ".join(paragraph[10:30]) + " The end.",
        },
        # the Chinese question with ASCII / other punctuation and a space: the same text once normalised
        {
            "instruction": zh.record["question"].replace("？", "?") + " ",
            "output": zh.references[0].replace("。", "!"),
        },
        # clean: other topics, and one on the same topic with other words
        {
            "instruction": "How do I bake sourdough bread at home?",
            "output": "Feed the starter and bake it hot.",
        },
        {"instruction": "Name three primary colours.", "output": "Red, yellow and blue."},
        {
            "instruction": "What does a larger LoRA alpha change?",
            "output": "It scales the adapter update up.",
        },
        {"instruction": "请推荐一本关于历史的书。", "output": "可以读《史记》。"},
    ]
    expect = {
        1: ("finetune-qa", exact.id, "exact"),
        2: ("finetune-qa", para.id, "minhash"),
        3: ("heldout-text", TEXT.examples[4].id, "ngram"),
        4: ("zh-support", zh.id, "exact"),
    }
    return _jsonl(tmp / "train.jsonl", records), expect


def test_planted_copies_are_found_by_the_right_method_and_clean_records_are_not(tmp_path):
    train, expect = _planted(tmp_path)
    result = scan([train], [QA, ZH, TEXT])
    by_record: dict[int, set[tuple[str, str, str]]] = {}
    for m in result.matches:
        by_record.setdefault(m.record, set()).add((m.suite_name, m.example_id, m.method))
    for line, (suite, ex, method) in expect.items():
        assert (suite, ex, method) in by_record.get(line, set()), (line, by_record.get(line))
        assert {e for _, e, _ in by_record[line]} == {ex}  # and nothing else from that record
    assert set(by_record) == set(expect)  # records 5-8 are clean: never flagged
    # the 13-gram record holds 20 of the paragraph's words: a share of its spans, not all
    ngram = next(m for m in result.matches if m.record == 3 and m.method == "ngram")
    n_tokens = len(tokens(TEXT.examples[4].record["text"]))
    assert ngram.score == pytest.approx((20 - 13 + 1) / (n_tokens - 13 + 1))
    # the Chinese copy is character n-grams too (one "word" per character)
    assert any(m.record == 4 and m.method == "ngram" for m in result.matches)
    para = next(m for m in result.matches if m.record == 2 and m.method == "minhash")
    assert 0.5 <= para.score < 1.0
    counts = {s["name"]: len(s["contaminated"]) for s in result.suites}
    assert counts == {"finetune-qa": 2, "zh-support": 1, "heldout-text": 1}


def test_scores_do_not_depend_on_the_process_hash_seed(tmp_path):
    """Token ids once came from set order, so a str hash seed changed every MinHash estimate
    (a planted paraphrase was missed in ~1 of 4 processes). Two seeds, two processes: the same."""
    import subprocess
    import sys

    train, _ = _planted(tmp_path)
    code = (
        "import json, sys; from suites import load_suite; from trainers.contamination import scan; "
        "r = scan([sys.argv[1]], [load_suite(n) for n in ('finetune-qa', 'zh-support', 'heldout-text')]); "
        "print(json.dumps(sorted((m.record, m.example_id, m.method, m.score) for m in r.matches)))"
    )
    root = Path(__file__).resolve().parent.parent
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, str(train)],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and "minhash" in next(iter(outs))


def test_minhash_signatures_equal_datasketch():
    from datasketch import MinHash

    ids = np.array([5, 9, 5, 2, 7, 7, 1, 3], dtype=np.uint64) + np.uint64(1)
    owner = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    ref = MinHash(num_perm=64, seed=1, hashfunc=lambda x: x, scheme="legacy")
    a, b = ref.permutations
    sig, has = signatures(_Side(ids, owner, np.array([4, 4])), 2, a, b)
    p = np.uint64(0x9E3779B97F4A7C15)
    for k in (0, 1):
        own = ids[owner == k]
        with np.errstate(over="ignore"):
            hv = [int((own[i] * p + own[i + 1]) & np.uint64(0xFFFFFFFF)) for i in range(len(own) - 1)]
        m = MinHash(num_perm=64, seed=1, hashfunc=lambda x: x, scheme="legacy")
        m.update_batch(hv)
        assert has[k] and np.array_equal(sig[k], m.hashvalues)


def _zh_runs(tmp: Path) -> tuple[Path, Path, Path]:
    """Two predictions runs of zh-support: the candidate is right on the examples it 'saw'."""
    db = tmp / "z.duckdb"
    seen = {ex.id for ex in ZH.examples[:6]}
    no = "我不知道。"
    base = _jsonl(tmp / "base.jsonl", [
        {"id": ex.id, "output": ex.references[0] if i % 2 else no} for i, ex in enumerate(ZH.examples)
    ])  # fmt: skip
    cand = _jsonl(tmp / "cand.jsonl", [
        {"id": ex.id, "output": ex.references[0] if (ex.id in seen or i % 2) else "我不知道。"}
        for i, ex in enumerate(ZH.examples)
    ])  # fmt: skip
    for p in (base, cand):
        r = run_cli(
            "score", "--predictions", str(p), "--suite", "zh-support", "--db", str(db), "--no-progress"
        )
        assert r.returncode == 0, r.stderr
    train = _jsonl(tmp / "train.jsonl", [
        {"instruction": ex.record["question"], "output": ex.references[0]} for ex in ZH.examples[:6]
    ] + [{"instruction": "随便聊聊天气。", "output": "今天天气很好。"}])  # fmt: skip
    return db, base, cand, train


def test_gate_rules_and_clean_subset_on_real_stored_runs(tmp_path):
    db, base, cand, train = _zh_runs(tmp_path)
    side = ("--baseline", f"predictions:{base}", "--candidate", f"predictions:{cand}", "--db", str(db))

    def gate(text: str):
        pol = tmp_path / "p.yaml"
        pol.write_text(text)
        return run_cli("gate", *side, "--policy", str(pol))

    # subset: clean without a stored scan is bad input (exit 2), not a silent "all"
    r = gate("rules:\n  - {suite: zh-support, metric: token_f1, min_delta: 0, subset: clean}\n")
    assert r.returncode == 2 and "contamination scan" in r.stderr
    r = run_cli("data", "contamination", str(train), "--suite", "zh-support", "--db", str(db))
    assert r.returncode == 0 and "6 (20.0%)" in r.stdout, r.stdout
    assert gate("rules:\n  - {suite: zh-support, max_contaminated: 0}\n").returncode == 1
    assert gate("rules:\n  - {suite: zh-support, max_contaminated: 6}\n").returncode == 0
    assert gate("rules:\n  - {suite: zh-support, max_contaminated_rate: 0.1}\n").returncode == 1
    # on all examples the candidate "improves"; on the clean ones it does not move at all
    everything = gate("rules:\n  - {suite: zh-support, metric: exact_match, min_delta: 0.05}\n")
    clean = gate("rules:\n  - {suite: zh-support, metric: exact_match, min_delta: 0.05, subset: clean}\n")
    assert everything.returncode == 0, everything.stdout
    assert clean.returncode == 1 and "clean subset" in clean.stdout, clean.stdout
    with Store(db) as s:
        runs = [r[0] for r in s.db.execute("SELECT run_id FROM runs ORDER BY started_at").fetchall()]
        sid = s.db.execute("SELECT suite_id FROM runs WHERE run_id = ?", [runs[0]]).fetchone()[0]
        bad = {
            r[0]
            for r in s.db.execute(
                "SELECT DISTINCT example_id FROM contamination WHERE suite_id = ?", [sid]
            ).fetchall()
        }
        sql = "SELECT example_id, value FROM scores WHERE run_id = ? AND metric = 'exact_match'"
        vals = {rid: dict(s.db.execute(sql, [rid]).fetchall()) for rid in runs}
    assert bad == {ex.id for ex in ZH.examples[:6]}
    clean_ids = [e for e in vals[runs[0]] if e not in bad]
    delta = np.mean([vals[runs[1]][e] - vals[runs[0]][e] for e in clean_ids])
    assert delta == 0.0 and f"improved by {delta:+.4g}" in clean.stdout
    # show / compare print the contaminated count
    shown = run_cli("show", runs[1], "--db", str(db))
    assert "6 of 30 zh-support examples found in training data" in shown.stdout
    compared = run_cli("compare", runs[0], runs[1], "--db", str(db))
    assert "6 of 30 zh-support examples found in training data" in compared.stdout
    # the report: contaminated examples flagged, scoreboard on all and on the clean subset
    out = tmp_path / "r.html"
    r = run_cli("report", runs[0], runs[1], "--db", str(db), "-o", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text(encoding="utf-8")
    assert "clean subset (24 of 30 examples)" in html and '"contaminated"' in html


def test_bad_input_is_exit_2_and_stores_nothing(tmp_path):
    db = tmp_path / "b.duckdb"
    Store(db).close()
    before = table_dump(db)
    r = run_cli(
        "data", "contamination", str(tmp_path / "nope.jsonl"), "--suite", "finetune-qa", "--db", str(db)
    )
    assert r.returncode == 2 and "nope.jsonl: training file not found" in r.stderr
    numbers = write_suite(
        tmp_path / "s",
        "name: nums\nkind: task\ndata: data.jsonl\nprompt: '{{ a }} + {{ b }}'\nmetrics: [exact_match]\n",
        "".join(json.dumps({"id": f"n{i}", "a": i, "b": 2 * i}) + "\n" for i in range(3)),
    )
    train = _jsonl(tmp_path / "t.jsonl", [{"instruction": "Add 1 and 2.", "output": "3"}])
    r = run_cli("data", "contamination", str(train), "--suite", str(numbers), "--db", str(db))
    assert r.returncode == 2 and "no text fields" in r.stderr and r.stderr.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": "y"}\n{oops\n')
    r = run_cli("data", "contamination", str(bad), "--suite", "finetune-qa", "--db", str(db))
    assert r.returncode == 2 and "bad.jsonl:2" in r.stderr
    assert table_dump(db) == before
