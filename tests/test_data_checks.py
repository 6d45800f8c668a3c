"""Training data: formats, the `data check` numbers on a crafted file, convert and split."""

from __future__ import annotations

import json

import pytest

from harness.errors import UserError
from tests.conftest import run_cli
from trainers.checks import check_file
from trainers.convert import convert, split
from trainers.data import normalize, read_data


def _jsonl(path, rows):
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def _alpaca(i, out, instruction=None):
    return {"id": f"a{i}", "instruction": instruction or f"Name a colour number {i}.", "output": out}


CRAFTED = [
    _alpaca(1, "Blue is a calm colour."),  # line 1
    _alpaca(2, "Red is a warm colour."),  # 2
    "{not json",  # 3: unreadable
    {"id": "a4", "instruction": "Say hi."},  # 4: no output field
    _alpaca(5, ""),  # 5: empty output
    _alpaca(6, "Repeat me.", instruction="Repeat me."),  # 6: output == instruction
    _alpaca(7, "Green grows."),  # 7
    _alpaca(7, "Green grows."),  # 8: exact duplicate of 7
    _alpaca(9, "Yellow, like the sun!", instruction="Name a colour number 9."),  # 9
    _alpaca(9, "yellow like the SUN", instruction="name a colour number 9"),  # 10: near-duplicate of 9
    _alpaca(11, "Ok"),  # 11: short output
    _alpaca(12, " ".join(["word"] * 60)),  # 12: over max_length
]


def test_check_numbers_on_crafted_file(tmp_path, smollm2):
    tok = smollm2.tokenizer
    path = _jsonl(tmp_path / "crafted.jsonl", CRAFTED)
    r = check_file(path, tok, min_output_tokens=2, max_length=60)

    assert r.format == "alpaca"
    assert r.records == 12
    assert [line for line, _ in r.bad_lines] == [3, 4]
    assert "invalid JSON" in r.bad_lines[0][1] and "'output'" in r.bad_lines[1][1]
    assert r.usable == 9  # 10 readable, line 5 has no reply
    assert r.empty_fields == {"output": [5]}
    assert r.output_equals_instruction == [6]
    assert r.exact_duplicates == [[7, 8]]
    assert r.near_duplicates == [[9, 10]]
    assert r.short_outputs == [11]
    assert r.long_records == [12]
    assert r.failed  # unreadable lines → exit 2

    # Lengths are the tokenizer's own counts, checked independently.
    good = [json.loads(x) if isinstance(x, str) else x for x in CRAFTED if x not in (CRAFTED[2], CRAFTED[3])]
    outs = sorted(len(tok(x["output"], add_special_tokens=False)["input_ids"]) for x in good)
    assert (r.output_tokens.n, r.output_tokens.min, r.output_tokens.max) == (10, outs[0], outs[-1])
    assert r.output_tokens.median == (outs[4] + outs[5]) / 2
    assert r.total_tokens.max > 60 > r.total_tokens.median

    fw = r.first_words
    assert fw["n"] == 9  # the empty output has no first word
    assert fw["distinct"] == 7  # blue red repeat green yellow ok word
    assert sorted(fw["top"][:2]) == [("green", 2), ("yellow", 2)]
    assert any("exact duplicate" in w for w in r.warnings)
    assert any("near-duplicates" in w and "9, 10" in w for w in r.warnings)


def test_dpo_check_flags_chosen_equals_rejected(tmp_path, smollm2):
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": " Paris "},
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello"}],
            "rejected": [{"role": "assistant", "content": "Go away"}],
        },
    ]
    r = check_file(_jsonl(tmp_path / "p.jsonl", rows), smollm2.tokenizer)
    assert r.format == "dpo" and r.usable == 3
    assert r.chosen_equals_rejected == [2]
    assert r.output_tokens.n == 6  # chosen and rejected of each pair


def test_formats_read_into_the_same_conversation(tmp_path):
    want = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    files = {
        "alpaca": {"instruction": "Hi", "input": "", "output": "Hello", "system": "Be brief."},
        "sharegpt": {
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello"},
            ]
        },
        "messages": {"messages": want},
    }
    for fmt, rec in files.items():
        data = read_data(_jsonl(tmp_path / f"{fmt}.jsonl", [rec]))
        assert data.format == fmt and data.examples[0].messages == want
    # Alpaca's input is appended to the instruction.
    data = read_data(_jsonl(tmp_path / "in.jsonl", [{"instruction": "Sum:", "input": "2 2", "output": "4"}]))
    assert data.examples[0].messages[0]["content"] == "Sum:\n\n2 2"


def test_json_array_files_report_real_line_numbers(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n\n  {"instruction": "c", "output": 5}\n]\n')
    data = read_data(path)
    assert [e.line for e in data.examples] == [2]
    assert data.bad == [(4, "field 'output' must be a string")]


def test_unknown_format_names_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", ["", {"text": "hello"}])
    with pytest.raises(UserError) as e:
        read_data(path)
    assert e.value.line == 2 and "unknown data format" in str(e.value) and "alpaca" in str(e.value)
    with pytest.raises(UserError, match="unknown data format 'csv'"):
        read_data(path, "csv")


def test_convert_round_trip_keeps_content_and_ids(tmp_path):
    src = read_data(_jsonl(tmp_path / "a.jsonl", [_alpaca(1, "Blue."), _alpaca(2, "Red.")]))
    sharegpt = convert(src, "sharegpt")
    assert sharegpt[0]["id"] == "a1" and sharegpt[0]["conversations"][1] == {"from": "gpt", "value": "Blue."}
    msgs = convert(read_data(_jsonl(tmp_path / "s.jsonl", sharegpt)), "messages")
    back = convert(read_data(_jsonl(tmp_path / "m.jsonl", msgs)), "alpaca")
    assert back == [{**r, "input": ""} for r in [_alpaca(1, "Blue."), _alpaca(2, "Red.")]]


def test_convert_refusals_name_the_line(tmp_path):
    multi = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d"},
        ]
    }
    data = read_data(_jsonl(tmp_path / "m.jsonl", [_as_messages("x", "y"), multi]))
    with pytest.raises(UserError) as e:
        convert(data, "alpaca")
    assert e.value.line == 2
    with pytest.raises(UserError, match="no rejected response"):
        convert(data, "dpo")
    pairs = read_data(_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "good", "rejected": "bad"}]))
    assert convert(pairs, "messages")[0]["messages"][-1] == {"role": "assistant", "content": "good"}


def _as_messages(u, a):
    return {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}


def test_split_is_seeded_and_keeps_near_duplicates_together(tmp_path):
    rows = [_as_messages(f"question {i}", f"answer {i}") for i in range(50)]
    rows += [_as_messages("Question 7!", "ANSWER 7")]  # near-duplicate of row 7
    data = read_data(_jsonl(tmp_path / "d.jsonl", rows))
    a, b = split(data, 0.1, 0.2, seed=3), split(data, 0.1, 0.2, seed=3)
    assert a == b
    assert len(a["val"]) in (5, 6) and len(a["test"]) in (10, 11)
    assert sum(len(v) for v in a.values()) == 51
    where = {
        name
        for name, recs in a.items()
        for r in recs
        if normalize(r["messages"][0]["content"]) == "question 7"
    }
    assert len(where) == 1  # "question 7" and "Question 7!" landed in the same split
    assert split(data, 0.1, 0.2, seed=4) != a


def test_cli_check_convert_split(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [_alpaca(i, f"Colour {i} is nice.") for i in range(6)])
    r = run_cli("data", "check", str(good), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["records"] == 6 and report["usable"] == 6 and not report["failed"]

    bad = _jsonl(tmp_path / "bad.jsonl", [_alpaca(1, "ok then"), "{oops"])
    r = run_cli("data", "check", str(bad))
    assert r.returncode == 2 and f"{bad}:2: invalid JSON" in r.stderr.replace("\n", "")

    r = run_cli("data", "check", str(_jsonl(tmp_path / "u.jsonl", [{"text": "x"}])))
    assert r.returncode == 2 and "unknown data format" in r.stderr

    out = tmp_path / "conv.jsonl"
    r = run_cli("data", "convert", str(good), "--to", "sharegpt", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert read_data(out).format == "sharegpt" and len(read_data(out).examples) == 6
    r = run_cli("data", "convert", str(good), "--to", "dpo", "--out", str(tmp_path / "no.jsonl"))
    assert r.returncode == 2 and not (tmp_path / "no.jsonl").exists()

    r = run_cli("data", "split", str(good), "--out", str(tmp_path / "s"), "--val", "0.2", "--test", "0.2")
    assert r.returncode == 0, r.stderr
    sizes = {
        n: len((tmp_path / "s" / f"good.{n}.jsonl").read_text().splitlines())
        for n in ("train", "val", "test")
    }
    assert sizes == {"train": 4, "val": 1, "test": 1}
