"""`tunegate requests export` → an engine outside tunegate → `tunegate outputs import` → `run`
scores the imported outputs as cache hits (harness.exchange). The engine here is a small
transformers script over the exported rows (what a vLLM offline job does on a cluster), with
the real SmolLM2."""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from tests.conftest import run_cli, table_dump, write_suite

QA = """name: ex-qa
kind: task
data: data.jsonl
prompt: "Answer in one word. {{ question }}"
reference: answer
generation: {max_new_tokens: 8, stop: ["\\n"]}
metrics: [exact_match, token_f1]
"""
DATA = "".join(
    json.dumps({"id": f"q{i}", "question": q, "answer": a}) + "\n"
    for i, (q, a) in enumerate(
        [
            ("What is the capital of France?", "Paris"),
            ("What colour is the sky?", "blue"),
            ("2+2=?", "4"),
            ("What do bees make?", "honey"),
        ]
    )
)


def _engine(rows: list[dict]) -> list[dict]:
    """A batch engine that is not tunegate: greedy continuations of the exported prompts with
    transformers, one row at a time, cut where the end-of-sequence token comes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models import resolve_model

    weights = resolve_model("smollm2").weights
    tok = AutoTokenizer.from_pretrained(weights)
    model = AutoModelForCausalLM.from_pretrained(weights, torch_dtype=torch.float32).eval()
    out = []
    for r in rows:
        assert r["prompt"] and r["messages"] is None  # a local model: the rendered prompt
        ids = tok(r["prompt"], add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            gen = model.generate(
                ids, max_new_tokens=int(r["max_tokens"]), do_sample=False, pad_token_id=tok.pad_token_id,
                temperature=None, top_p=None, top_k=None,
            )  # fmt: skip
        new = gen[0, ids.shape[1] :].tolist()
        n = next((k for k, t in enumerate(new) if t in (tok.eos_token_id, tok.pad_token_id)), len(new))
        out.append({"cache_key": r["cache_key"], "output": tok.decode(new[:n], skip_special_tokens=True),
                    "output_tokens": n})  # fmt: skip
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exchange")
    suite = write_suite(tmp / "qa", QA, DATA)
    req = tmp / "requests.parquet"
    r = run_cli("requests", "export", str(suite), "--model", "smollm2", "-o", str(req))
    assert r.returncode == 0, r.stderr
    from harness.exchange import read_rows

    _, rows = read_rows(req)
    return tmp, suite, req, rows


def _calls(out: str) -> int:
    return sum(int(n) for n in re.findall(r"(\d+) model calls", out))


def test_imported_outputs_are_scored_as_cache_hits_equal_to_a_direct_run(exported, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, suite, req, rows = exported
    assert len(rows) == 4 and len({r["cache_key"] for r in rows}) == 4
    assert all(
        json.loads(r["params"])["max_new_tokens"] == 8 and json.loads(r["stop"]) == ["\n"] for r in rows
    )
    assert all("<|im_start|>" in r["prompt"] for r in rows)  # rendered with the model's chat template

    made = _engine(rows)
    shards = [tmp_path / "shard-0.parquet", tmp_path / "shard-1.parquet"]  # what two engine jobs write
    for k, path in enumerate(shards):
        pq.write_table(pa.Table.from_pylist(made[k::2]), path)
    db = tmp_path / "imported.duckdb"
    r = run_cli(
        "outputs", "import", *map(str, shards), "--model", "smollm2", "--requests", str(req), "--db", str(db)
    )
    assert r.returncode == 0, r.stderr
    assert "stored 4 generations (0 errors)" in " ".join(r.stdout.split())

    ran = run_cli("run", "-m", "smollm2", "-s", str(suite), "--db", str(db), "-b", "1")
    assert ran.returncode == 0, ran.stderr
    assert _calls(ran.stdout) == 0 and "4 of the run from the generation cache" in ran.stdout

    direct_db = tmp_path / "direct.duckdb"
    direct = run_cli("run", "-m", "smollm2", "-s", str(suite), "--db", str(direct_db), "-b", "1")
    assert direct.returncode == 0, direct.stderr
    assert _calls(direct.stdout) > 0

    def scores(path):
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute(
                "SELECT s.example_id, s.metric, s.value, g.output FROM scores s"
                " JOIN run_examples e USING (run_id, example_id) JOIN generations g USING (cache_key)"
                " ORDER BY 1, 2"
            ).fetchall()
        finally:
            con.close()

    got, want = scores(db), scores(direct_db)
    assert len(got) == 8 and got == want


def test_bad_outputs_are_refused_and_nothing_stored_is_lost(exported, tmp_path):
    from harness.errors import UserError
    from harness.exchange import import_outputs, read_rows, write_rows
    from harness.models import resolve_model
    from harness.store import Store

    tmp, _, req, rows = exported
    resolved = resolve_model("smollm2")
    db = tmp_path / "t.duckdb"
    good = tmp_path / "good.jsonl"
    write_rows([{"cache_key": rows[0]["cache_key"], "output": "Paris"}], good, ("cache_key", "output"))
    with Store(db) as store:
        assert import_outputs(store, resolved, good, req).stored == 1
    before = table_dump(db)

    def refused(lines: list[dict], requests=req, match: str = "") -> UserError:
        path = tmp_path / "bad.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        with Store(db) as store, pytest.raises(UserError, match=match) as e:
            import_outputs(store, resolved, path, requests)
        assert table_dump(db) == before
        return e.value

    key = rows[1]["cache_key"]
    e = refused([{"cache_key": key, "text": "x"}], match="missing column")
    assert "output" in str(e)
    e = refused(
        [{"cache_key": key, "output": "a"}, {"cache_key": "0" * 64, "output": "b"}], match="unknown cache key"
    )
    assert e.line == 2
    refused([{"cache_key": key, "output": None}], match="neither output nor error")
    refused([{"cache_key": key, "output": "a"}, {"cache_key": key, "output": "a"}], match="listed twice")
    # the requests of another model: its model_id, or (without the column) its keys, differ
    _, req_rows = read_rows(req)
    other = [{**r, "model_id": "m-0123456789ab"} for r in req_rows]
    other_req = tmp_path / "other.parquet"
    write_rows(other, other_req)
    refused([{"cache_key": key, "output": "a"}], requests=other_req, match="is for model m-0123456789ab")
    edited = tmp_path / "edited.jsonl"
    cols = [c for c in req_rows[0] if c not in ("model_id", "_line")]
    nine = [
        {**r, "params": r["params"].replace('"max_new_tokens": 8', '"max_new_tokens": 9')} for r in req_rows
    ]
    write_rows(nine, edited, cols)
    refused([{"cache_key": key, "output": "a"}], requests=edited, match="not .*key for this request")

    # through the CLI: exit 2, the file named
    bad = tmp_path / "bad.parquet"
    write_rows([{"cache_key": key}], bad, ("cache_key",))
    r = run_cli("outputs", "import", str(bad), "--model", "smollm2", "--requests", str(req), "--db", str(db))
    assert r.returncode == 2 and "missing column(s) output" in " ".join(r.stderr.split())
    assert table_dump(db) == before
    # the imported row is a cache entry of the model, stored once
    with Store(db) as store:
        hit = store.cached_generations([rows[0]["cache_key"]])[rows[0]["cache_key"]]
    assert hit.output == "Paris" and hit.model_id == resolved.model_id


def test_export_refuses_what_cannot_round_trip(tmp_path):
    suite = write_suite(tmp_path / "ppl", "name: ppl\nkind: perplexity\ndata: data.jsonl\ntext_field: text\n",
                        '{"id": "a", "text": "Hello there, world."}\n')  # fmt: skip
    r = run_cli("requests", "export", str(suite), "--model", "smollm2", "-o", str(tmp_path / "r.csv"))
    assert r.returncode == 2 and ".parquet or .jsonl" in r.stderr
    r = run_cli("requests", "export", str(suite), "--model", "smollm2", "-o", str(tmp_path / "r.jsonl"))
    assert r.returncode == 2 and "only generations can be exported" in " ".join(r.stderr.split())
    assert not (tmp_path / "r.jsonl").exists()
