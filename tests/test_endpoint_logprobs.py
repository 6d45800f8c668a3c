"""The positive log-likelihood path of `openai:`: an endpoint whose echo log-probabilities are
right (tests/echo_server.py, llama.cpp's eval + scores over HTTP) passes the correctness probe,
and its perplexity and multiple-choice numbers agree with `llamacpp:` in-process."""

from __future__ import annotations

import json
from urllib.parse import quote

import duckdb
import pytest

from harness.models import resolve_model
from harness.models.backend import open_backend
from harness.runner import RunOptions, run_suite
from harness.store import Store
from suites import load_suite
from tests.conftest import run_cli, write_suite

TEXTS = [
    "The river bends twice before it reaches the old mill, where the water slows and turns green.",
    "A short line.",
    # longer than max_length (64 tokens): scored in overlapping windows, locally and over HTTP
    " ".join(
        "Every spring the orchard fills with bees, and the farmer counts the hives again, "
        "writing each number in a small book he keeps by the door."
        for _ in range(4)
    ),
]
PPL = """name: ep-ppl
kind: perplexity
data: texts.jsonl
max_length: 64
stride: 32
"""
TOL = 2e-3  # nats per text: float32 logits, the same weights and windows on both sides


@pytest.fixture(scope="module")
def echo_backend(echo_server):
    return open_backend(resolve_model(f"openai:smollm2@{echo_server.base_url}"))


def test_probe_passes_on_a_correct_endpoint(echo_backend):
    echo_backend.preflight({"rolling_loglikelihood"}, "perplexity suite x")  # raises if refused
    assert echo_backend._probe is None


def test_perplexity_over_http_equals_llamacpp_in_process(echo_server, llamacpp_smollm2, tmp_path):
    """With `prefix=` (lm-eval's prefix token, here SmolLM2's BOS text) the endpoint scores every
    token from the same context as `llamacpp:` does, windows included; without it the first
    token is unscored and the rest are conditioned on no BOS, which in-process scoring of the
    bare text reproduces."""
    path = write_suite(tmp_path, PPL, "".join(json.dumps({"text": t}) + "\n" for t in TEXTS), "texts.jsonl")
    suite = load_suite(path)
    bos = llamacpp_smollm2.detokenize([llamacpp_smollm2.prefix_token]).decode()
    with_prefix = open_backend(resolve_model(f"openai:smollm2@{echo_server.base_url}?prefix={quote(bos)}"))
    bare = open_backend(resolve_model(f"openai:smollm2@{echo_server.base_url}"))
    with Store(tmp_path / "p.duckdb") as store:
        runs = {
            name: run_suite(store, backend, suite, RunOptions())
            for name, backend in (("prefix", with_prefix), ("bare", bare), ("local", llamacpp_smollm2))
        }
        rows = {
            (r, e): (json.loads(d)["nll"], json.loads(d)["n_tokens"])
            for r, e, d in store.db.execute(
                "SELECT run_id, example_id, detail FROM scores WHERE metric = 'perplexity'"
            ).fetchall()
        }
    assert all(o.n_errors == 0 for o in runs.values())
    for ex in suite.examples:
        local_nll, local_n = rows[(runs["local"].run_id, ex.id)]
        http_nll, http_n = rows[(runs["prefix"].run_id, ex.id)]
        assert http_n == local_n and abs(http_nll - local_nll) < TOL, (ex.id, http_nll, local_nll)
        if ex.record["text"] != TEXTS[2]:  # one window: the bare text's echo, in process
            bare_nll, bare_n = rows[(runs["bare"].run_id, ex.id)]
            expected = [x for x in llamacpp_smollm2.text_logprobs(ex.record["text"]) if x is not None]
            assert bare_n == local_n - 1 and abs(bare_nll + sum(expected)) < TOL


def test_multiple_choice_loglikelihoods_agree_and_lm_eval_runs_on_the_endpoint(
    echo_backend, llamacpp_smollm2, echo_server, tmp_path
):
    pairs = [
        ("Question: What is the capital of France?\nAnswer:", " Paris"),
        ("Question: What is the capital of France?\nAnswer:", " Berlin"),
        ("2 + 2 =", " 4"),
    ]
    http = dict(x for batch in echo_backend.loglikelihood(pairs, 8) for x in batch)
    local = dict(x for batch in llamacpp_smollm2.loglikelihood(pairs, 8) for x in batch)
    for i in range(len(pairs)):
        assert http[i].error is None and abs(http[i].logprob - local[i].logprob) < TOL
        assert http[i].is_greedy == local[i].is_greedy and http[i].n_tokens == local[i].n_tokens
    from suites.loader import BUILTIN_DIR

    suite = tmp_path / "mc.yaml"
    suite.write_text(
        "name: ep-mc\nkind: benchmark\n"
        f"include_path: {BUILTIN_DIR.parent / 'lm_eval_tasks'}\ntasks: [mini_knowledge]\nlimit: 3\n"
    )
    db = tmp_path / "mc.duckdb"
    r = run_cli(
        "run", "--model", f"openai:smollm2@{echo_server.base_url}", "--suite", str(suite), "--db", str(db)
    )
    assert r.returncode == 0, r.stdout + r.stderr
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT example_id, value, error FROM scores WHERE metric LIKE 'mini_knowledge/acc%'"
    ).fetchall()
    con.close()
    assert len({e for e, *_ in rows}) == 3 and all(v in (0.0, 1.0) and err is None for _, v, err in rows)
