"""The held-out split of the training data as a suite (#17 part 5): `data_format` task suites and
`run --suite FILE.jsonl --metric …` suites made on the fly."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli, table_dump, write_suite

MULTI = [
    {
        "id": "c1",
        "messages": [
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": "Colour of the sky?"},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "And grass?"},
            {"role": "assistant", "content": "Green."},
        ],
    },
    {
        "id": "c2",
        "messages": [
            {"role": "user", "content": "Colour of snow?"},
            {"role": "assistant", "content": "White."},
        ],
    },
]
SHAREGPT = [
    {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Two plus two?"},
            {"from": "gpt", "value": "Four."},
        ]
    },
    {"conversations": [{"from": "human", "value": "Capital of France?"}, {"from": "gpt", "value": "Paris."}]},
]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_messages_and_sharegpt_suites_send_the_conversation_minus_its_last_reply(tmp_path, smollm2):
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite

    multi = load_suite(
        write_suite(
            tmp_path / "m",
            "name: multi\nkind: task\ndata: data.jsonl\ndata_format: messages\n"
            "generation: {max_new_tokens: 4}\nmetrics: [token_f1]\n",
            _jsonl(MULTI),
        )
    )
    share = load_suite(
        write_suite(
            tmp_path / "s",
            "name: share\nkind: task\ndata: data.jsonl\ndata_format: auto\n"
            "generation: {max_new_tokens: 4}\nmetrics: [exact_match]\n",
            _jsonl(SHAREGPT),
        )
    )
    req = multi.request(multi.examples[0])
    assert list(req.messages) == MULTI[0]["messages"][:-1] and multi.examples[0].references == ["Green."]
    req = share.request(share.examples[0])
    assert list(req.messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Two plus two?"},
    ]
    assert share.examples[1].references == ["Paris."] and share.examples[1].id == "line-2"
    with Store(tmp_path / "t.duckdb") as store:
        o = run_suite(store, smollm2, multi, RunOptions(batch_size=2))
        sent = dict(
            store.db.execute(
                "SELECT re.example_id, g.prompt FROM run_examples re JOIN generations g USING (cache_key)"
                " WHERE run_id = ?",
                [o.run_id],
            ).fetchall()
        )
    tok = smollm2.tokenizer
    want = tok.apply_chat_template(MULTI[0]["messages"][:-1], tokenize=False, add_generation_prompt=True)
    assert sent["c1"] == want and "And grass?" in want and "Blue." in want and "Green." not in want


def test_bad_conversation_suites_are_located_errors(tmp_path):
    from harness.errors import UserError
    from suites import load_suite

    no_reply = [{"messages": [{"role": "user", "content": "hi"}]}]
    with pytest.raises(UserError, match="no assistant turn") as e:
        load_suite(
            write_suite(
                tmp_path / "a",
                "name: x\nkind: task\ndata: data.jsonl\ndata_format: messages\nmetrics: [token_f1]\n",
                _jsonl(no_reply),
            )
        )
    assert "data.jsonl" in str(e.value) and ":1" in str(e.value)
    with pytest.raises(UserError, match="either 'prompt'"):
        load_suite(
            write_suite(
                tmp_path / "b",
                "name: x\nkind: task\ndata: data.jsonl\ndata_format: messages\n"
                "prompt: '{{ q }}'\nmetrics: [token_f1]\n",
                _jsonl(MULTI),
            )
        )
    dpo = [{"prompt": "p", "chosen": "a", "rejected": "b"}]
    with pytest.raises(UserError, match="preference pairs"):
        load_suite(
            write_suite(
                tmp_path / "c",
                "name: x\nkind: task\ndata: data.jsonl\ndata_format: auto\nmetrics: [token_f1]\n",
                _jsonl(dpo),
            )
        )


def test_data_split_output_runs_directly_as_a_suite(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Say the number {i}."},
                {"role": "assistant", "content": str(i)},
            ]
        }
        for i in range(20)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text(_jsonl(rows))
    r = run_cli("data", "split", str(data), "--val", "0.1", "--test", "0.1")
    assert r.returncode == 0, r.stderr
    test_file = tmp_path / "train.test.jsonl"
    db = tmp_path / "t.duckdb"
    # bad input first: nothing stored
    r = run_cli("run", "-m", "smollm2", "--suite", str(test_file), "--db", str(db))
    assert r.returncode == 2 and "needs at least one --metric" in r.stderr and not db.exists()
    r = run_cli("run", "-m", "smollm2", "--suite", str(test_file), "--metric", "nope", "--db", str(db))
    assert r.returncode == 2 and "--metric nope" in r.stderr and not db.exists()
    run = [
        "run",
        "-m",
        "smollm2",
        "--suite",
        str(test_file),
        "--metric",
        "token_f1",
        "--metric",
        "rougeL",
        "--db",
        str(db),
        "--no-progress",
        "-b",
        "4",
    ]
    r = run_cli(*run)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "train.test: 2 examples" in r.stdout
    before = table_dump(db)
    copy = tmp_path / "elsewhere" / "train.test.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(test_file.read_bytes())
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    (sid,) = con.execute("SELECT suite_id FROM suites").fetchone()
    metrics = sorted(r[0] for r in con.execute("SELECT DISTINCT metric FROM run_metrics").fetchall())
    con.close()
    assert sid.startswith("train.test-") and metrics == ["rougeL", "token_f1"]
    # the content is the identity: the same bytes elsewhere, same metrics → the same suite id
    from harness.suite import suite_id
    from suites import load_suite
    from suites.adhoc import adhoc_suite

    assert suite_id(load_suite(adhoc_suite(copy, ["token_f1", "rougeL"]))) == sid
    assert suite_id(load_suite(adhoc_suite(copy, ["token_f1"]))) != sid
    assert table_dump(db) == before
