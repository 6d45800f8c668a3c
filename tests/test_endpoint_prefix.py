"""An endpoint's scoring convention found without the user (#21 §3), and a server that dies
mid-run, on real llama-cpp-python servers on loopback (tests/llama_server.py)."""

from __future__ import annotations

import os
import signal
import time

import duckdb
import pytest

from tests.conftest import run_cli
from tests.llama_server import LlamaServer


@pytest.fixture(scope="module")
def gguf_server(tmp_path_factory):
    """llama-cpp-python serving the bundled GGUF under its path (no alias): /v1/models reports
    the file, as the server does when it is started with just --model."""
    from harness.models.gguf import smollm2_gguf

    log = tmp_path_factory.mktemp("gguf-server") / "server.log"
    with LlamaServer(log=log, aliases=(str(smollm2_gguf()),)) as srv:
        yield srv


def test_prefix_comes_from_the_served_gguf_metadata(gguf_server, smollm2):
    from harness.models import resolve_model
    from harness.models.gguf import smollm2_gguf
    from harness.models.openai_backend import OpenAIBackend

    spec = f"openai:{smollm2_gguf()}@{gguf_server.base_url}"
    backend = OpenAIBackend(resolve_model(spec))
    local = smollm2.scoring()
    assert backend.scoring() == {
        "tokenizer": local["tokenizer"],  # the GGUF's token list hashes as the converted tokenizer
        "prefix_token": "<|im_start|>",
        "first_token_scored": True,
        "prefix_source": "gguf",
    }
    assert local["prefix_token"] == "<|im_start|>" and local["first_token_scored"] is True
    # found or given, the same prefix is the same model: one fingerprint, one cache
    given = resolve_model(f"{spec}?prefix=<|im_start|>")
    assert given.fingerprint == backend.resolved.fingerprint
    assert given.facts["scoring"]["prefix_source"] == "option"
    # `?prefix=` with no text: no prefix, and none is looked for (today's default fingerprint)
    off = resolve_model(f"{spec}?prefix=")
    assert off.facts["scoring"] == {
        "tokenizer": local["tokenizer"],
        "prefix_token": None,
        "first_token_scored": False,
        "prefix_source": None,
    }
    assert "prefix" not in off.facts and off.fingerprint != given.fingerprint


def test_one_tokenizer_hash_from_transformers_tokenizer_json_and_gguf(smollm2):
    """A local run and an endpoint run of the same weights report the same tokenizer, whichever
    way it was read (the JSON reader is what a core-only install, without transformers, uses)."""
    from harness.models.gguf import smollm2_gguf
    from harness.models.prefix import _folder_facts_json, folder_facts, gguf_facts

    folder = smollm2.resolved.weights
    expected = (smollm2.scoring()["tokenizer"], "<|im_start|>")
    assert folder_facts(folder) == _folder_facts_json(folder) == gguf_facts(smollm2_gguf()) == expected


def test_server_without_a_discoverable_tokenizer_falls_back_to_first_token_unscored(llama):
    """The session server serves aliases (`smollm2`): nothing to read a tokenizer from."""
    from harness.models import resolve_model
    from harness.models.openai_backend import OpenAIBackend

    backend = OpenAIBackend(resolve_model(f"openai:smollm2@{llama.base_url}"))
    backend.preflight({"generate"}, "task suite")
    assert backend.scoring() == {
        "tokenizer": None,
        "prefix_token": None,
        "first_token_scored": False,
        "prefix_source": None,
    }
    assert "prefix" not in backend.resolved.facts  # the fingerprint of earlier versions


def test_tokenizer_option_gives_the_prefix_on_any_server(llama):
    from harness.models import resolve_model

    weights = resolve_model("smollm2").weights
    resolved = resolve_model(f"openai:smollm2@{llama.base_url}?tokenizer={weights}")
    assert resolved.facts["scoring"]["prefix_source"] == "tokenizer"
    assert resolved.facts["prefix"] == "<|im_start|>"


def _requests_served(log) -> int:
    return log.read_text(errors="replace").count("POST /v1/chat/completions")


def test_server_killed_mid_run_stops_the_run_and_resume_completes_it(tmp_path):
    """kill -9 the server after a few answers: the CLI stops at once with the resume command
    (not after every request's retries); resume against the restarted server completes the run
    with no lost and no duplicated rows."""
    db = tmp_path / "dead.duckdb"
    log = tmp_path / "server.log"
    srv = LlamaServer(log=log, aliases=("smollm2",)).__enter__()
    try:
        spec = f"openai:smollm2@{srv.base_url}?max_concurrency=2"
        import subprocess
        import sys

        from tests.conftest import ROOT

        env = {**os.environ, "COLUMNS": "200"}
        args = [sys.executable, "-m", "tunegate", "run", "--model", spec, "--suite", "finetune-qa"]
        proc = subprocess.Popen(
            [*args, "--db", str(db), "--batch-size", "2"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 180
        while _requests_served(log) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before the server was killed"
        os.kill(srv.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        stopped_after = time.monotonic() - killed
    finally:
        srv.__exit__(None, None, None)
    assert proc.returncode == 2, (out, err)
    assert "stopped accepting connections" in err, err
    run_id = err.split("tunegate run --resume ")[1].split()[0]
    assert f"tunegate run --resume {run_id} --db {db}" in " ".join(err.split())
    assert stopped_after < 15, f"took {stopped_after:.1f} s after the kill"  # 4 retries each: ~1 min
    con = duckdb.connect(str(db), read_only=True)
    status, stored = con.execute(
        "SELECT status, (SELECT count(*) FROM run_examples e WHERE e.run_id = r.run_id) FROM runs r"
    ).fetchone()
    con.close()
    assert status == "failed" and 0 < stored < 30

    # the server is back on the same port (same model, same fingerprint): resume finishes it
    again = LlamaServer(log=tmp_path / "server2.log", aliases=("smollm2",))
    again.port = srv.port
    with again:
        r = run_cli("run", "--resume", run_id, "--db", str(db))
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        n_runs, status = con.execute("SELECT count(*), any_value(status) FROM runs").fetchone()
        rows, distinct, errors = con.execute(
            "SELECT count(*), count(DISTINCT example_id), count(*) FILTER (WHERE error IS NOT NULL) "
            "FROM run_examples WHERE run_id = ?",
            [run_id],
        ).fetchone()
        n_metrics = con.execute("SELECT count(*) FROM run_metrics WHERE run_id = ?", [run_id]).fetchone()[0]
        scores, distinct_scores = con.execute(
            "SELECT count(*), count(DISTINCT (example_id, metric)) FROM scores WHERE run_id = ?", [run_id]
        ).fetchone()
    finally:
        con.close()
    assert (n_runs, status) == (1, "completed")
    assert rows == distinct == 30 and errors == 0  # none lost, none twice
    assert scores == distinct_scores == 30 * n_metrics
