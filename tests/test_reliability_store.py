"""Bad bytes, bad stores, odd names (issue #14, item 5): one clear message, the right exit code.

Real DuckDB files, the real CLI in subprocesses; `predictions:` models so nothing heavy loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb
import pytest

from harness.store import Store
from harness.store.migrations import MIGRATIONS
from tests.conftest import ROOT, run_cli, table_dump, write_suite

SUITE = """name: qa
kind: task
data: data.jsonl
prompt: "Q: {{ q }}"
reference: a
metrics: [exact_match]
"""
ROWS = [{"id": f"e{i}", "q": f"What is {i} plus {i}?", "a": str(2 * i)} for i in range(3)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture()
def suite(tmp_path):
    return write_suite(tmp_path / "s", SUITE, _jsonl(ROWS))


@pytest.fixture()
def preds(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(_jsonl([{"id": r["id"], "output": r["a"]} for r in ROWS]), encoding="utf-8")
    return path


def _run(suite, preds, db, *extra):
    return run_cli("run", "--model", f"predictions:{preds}", "--suite", str(suite), "--db", str(db), *extra)


def _one_line_error(r, code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    return r.stderr.replace("\n", "")


# -- invalid UTF-8 ----------------------------------------------------------------------------
def test_invalid_utf8_in_data_names_file_and_line(tmp_path, preds):
    good = _jsonl(ROWS).encode()
    lines = good.splitlines(keepends=True)
    lines[1] = lines[1].replace(b"plus", b"pl\xffus")  # a Latin-1 byte on line 2
    suite = write_suite(tmp_path / "s", SUITE)
    (tmp_path / "s" / "data.jsonl").write_bytes(b"".join(lines))
    err = _one_line_error(_run(suite, preds, tmp_path / "t.duckdb"))
    assert "data.jsonl:2: not valid UTF-8 (byte 0xff at column" in err
    assert not (tmp_path / "t.duckdb").exists()


def test_invalid_utf8_in_predictions_names_file_and_line(tmp_path, suite):
    preds = tmp_path / "preds.jsonl"
    preds.write_bytes(b'{"id": "e0", "output": "0"}\n{"id": "e1", "output": "\xc3\x28"}\n')
    err = _one_line_error(_run(suite, preds, tmp_path / "t.duckdb"))
    assert "preds.jsonl:2: not valid UTF-8" in err


def test_invalid_utf8_in_training_data_names_file_and_line(tmp_path):
    (tmp_path / "train.jsonl").write_bytes(
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        b'{"messages": [{"role": "user", "content": "h\xe9"}]}\n'
    )
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("name: bad\ndata: {train: train.jsonl}\n", encoding="utf-8")
    err = _one_line_error(run_cli("train", "sft", "-c", str(cfg), "--db", str(tmp_path / "t.duckdb")))
    assert "train.jsonl:2: not valid UTF-8" in err


def test_a_field_named_self_is_data_not_a_parameter(tmp_path, preds):
    rows = [{**r, "self": "me", "template": "t"} for r in ROWS]
    prompt = "{{ record['self'] }}/{{ template }}: {{ q }}"  # `self` alone is Jinja's own name
    suite = write_suite(tmp_path / "s", SUITE.replace('"Q: {{ q }}"', json.dumps(prompt)), _jsonl(rows))
    r = _run(suite, preds, tmp_path / "t.duckdb")
    assert r.returncode == 0, r.stderr[-2000:]
    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    prompts = [p for (p,) in con.execute("SELECT prompt FROM generations ORDER BY prompt").fetchall()]
    con.close()
    assert len(prompts) == 3 and all("me/t: What is" in p for p in prompts), prompts


# -- damaged and future stores -----------------------------------------------------------------
def _filled_store(path) -> None:
    """A store whose data spans many blocks, so a cut lands in the middle of real content."""
    with Store(path) as s:
        s.upsert_model("m-1", "smollm2", "alias", "f" * 64)
        examples = [(f"x{i}", {"q": "w" * 200 + str(i)}, ["r"]) for i in range(5000)]
        s.upsert_suite("big-1", "big", "task", "h", "big.yaml", {}, examples)


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_truncated_store_is_damaged_exit_2_and_unchanged(tmp_path, suite, preds, keep):
    full = tmp_path / "full.duckdb"
    _filled_store(full)
    data = full.read_bytes()
    db = tmp_path / "cut.duckdb"
    db.write_bytes(data[: int(len(data) * keep)])
    before = db.read_bytes()
    for r in (run_cli("runs", "--db", str(db)), _run(suite, preds, db)):
        err = _one_line_error(r)
        assert "store is damaged" in err and str(db) in err
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.glob("cut.duckdb*")) == ["cut.duckdb"]  # no WAL left


def test_store_from_a_newer_tunegate_is_read_but_never_written(tmp_path, suite, preds):
    db = tmp_path / "t.duckdb"
    assert _run(suite, preds, db).returncode == 0
    future = len(MIGRATIONS) + 5
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_version (version, name) VALUES (?, 'm_future')", [future])
    con.close()
    before = table_dump(db)

    listed = run_cli("runs", "--db", str(db))
    assert listed.returncode == 0 and "completed" in listed.stdout, listed.stderr
    err = _one_line_error(_run(suite, preds, db))
    assert f"schema version {future}" in err and "upgrade tunegate" in err
    assert table_dump(db) == before
    with Store(db) as s:  # the API refuses too, and the connection itself is read-only
        assert s.read_only_reason and s.schema_version() == future
        with pytest.raises(duckdb.Error, match="read-only"):
            s.db.execute("DELETE FROM runs")
    assert table_dump(db) == before


# -- run-id prefixes ---------------------------------------------------------------------------
@pytest.mark.parametrize("ref", ["_", "%", "r-________", "r-%"])
def test_like_wildcards_in_a_run_id_prefix_are_literal(tmp_path, suite, preds, ref):
    db = tmp_path / "t.duckdb"
    assert _run(suite, preds, db).returncode == 0
    err = _one_line_error(run_cli("show", ref, "--db", str(db)))
    assert f"unknown run id '{ref}'" in err
    [(run_id,)] = duckdb.connect(str(db), read_only=True).execute("SELECT run_id FROM runs").fetchall()
    assert run_cli("show", run_id[:4], "--db", str(db)).returncode == 0  # real prefixes still work


# -- a locked store ------------------------------------------------------------------------------
def _hold_lock(db, seconds: float) -> subprocess.Popen:
    code = (
        "import sys, time; from harness.store import Store\n"
        f"s = Store({str(db)!r}); print('held', flush=True); time.sleep({seconds}); s.close()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_locked_store_has_its_own_exit_code_and_wait_retries(tmp_path, suite, preds):
    db = tmp_path / "t.duckdb"
    assert _run(suite, preds, db).returncode == 0
    holder = _hold_lock(db, 60)
    try:
        err = _one_line_error(run_cli("runs", "--db", str(db)), code=3)
        assert f"store {db} is locked by another process (PID {holder.pid})" in err
        assert "--wait SECONDS" in err
        t0 = time.monotonic()
        err = _one_line_error(run_cli("runs", "--db", str(db), "--wait", "1.5"), code=3)
        assert time.monotonic() - t0 >= 1.5 and "after waiting 1.5s" in err
    finally:
        holder.kill()
        holder.wait()
    holder = _hold_lock(db, 4)  # released while the next command waits for it
    try:
        r = run_cli("run", "--wait", "60", "--model", f"predictions:{preds}", "--suite", str(suite),
                    "--db", str(db))  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        holder.wait()
    assert _one_line_error(run_cli("runs", "--db", str(db), "--wait", "soon")).count("--wait takes") == 1


def test_exit_codes_are_documented_in_help_and_readme():
    help_text = " ".join(run_cli("--help").stdout.split())
    assert "3 store locked by another process (retry with --wait SECONDS)" in help_text
    assert "143 SIGTERM" in help_text
    for doc in ("README.md", "docs/concepts.md"):  # the README's table, and the docs' full one
        text = (ROOT / doc).read_text(encoding="utf-8")
        assert "| 3 |" in text and "--wait SECONDS" in text, doc


# -- pickled weights -----------------------------------------------------------------------------
def test_pickled_only_weights_are_refused_before_a_run_exists(tmp_path, suite):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    folder = tmp_path / "model"
    model = LlamaForCausalLM(tiny)
    model.save_pretrained(folder)  # then as an older checkpoint has it: a pickled state dict only
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    db = tmp_path / "t.duckdb"
    err = _one_line_error(run_cli("run", "--model", f"hf:{folder}", "--suite", str(suite), "--db", str(db)))
    assert "pytorch_model.bin" in err and "safetensors only" in err
    assert not db.exists()  # refused before the store was opened, so no `failed` run either


def test_pickled_only_adapter_is_refused(tmp_path, suite):
    import torch

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    torch.save({"base_model.model.lm_head.lora_A.weight": torch.zeros(4, 4)}, adapter / "adapter_model.bin")
    db = tmp_path / "t.duckdb"
    err = _one_line_error(
        run_cli("run", "--model", f"smollm2?adapter={adapter}", "--suite", str(suite), "--db", str(db))
    )
    assert "adapter weights are only in pickled file(s) adapter_model.bin" in err
    assert not db.exists()
