"""Shared fixtures: the real SmolLM2 (converted once per machine), real DuckDB files, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# No network, no model hub, ever.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smollm2():
    """The bundled SmolLM2 as an HF backend; the GGUF conversion is cached per machine."""
    from harness.models import resolve_model
    from harness.models.hf import HFModel

    return HFModel(resolve_model("smollm2"))


@pytest.fixture(scope="session")
def llama(tmp_path_factory):
    """ONE real llama-cpp-python OpenAI-compatible server per test session (judge and endpoint
    tests share it): the bundled GGUF served as `smollm2` and as a second alias `candidate`."""
    from tests.llama_server import LlamaServer

    log = tmp_path_factory.mktemp("llama") / "server.log"
    with LlamaServer(n_threads=2, log=log, aliases=("smollm2", "candidate")) as srv:
        yield srv


@pytest.fixture()
def store(tmp_path):
    from harness.store import Store

    with Store(tmp_path / "t.duckdb") as s:
        yield s


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """`tunegate ARGS` in a subprocess, as a user (or CI) runs it."""
    env = {**os.environ, "COLUMNS": "200", **kw.pop("env", {})}
    return subprocess.run(
        [sys.executable, "-m", "tunegate", *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def write_suite(folder: Path, yaml_text: str, data: str | None = None, data_name: str = "data.jsonl") -> Path:
    """A suite file (and its data) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if data is not None:
        (folder / data_name).write_text(data, encoding="utf-8")
    path = folder / "suite.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    return path


def table_dump(db_path: Path) -> dict[str, list]:
    """Every row of every table, for 'nothing in the store changed' checks."""
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


@pytest.fixture(scope="session")
def llamacpp_smollm2():
    """The bundled GGUF itself through llama.cpp in-process (one Llama load per session)."""
    from harness.models import resolve_model
    from harness.models.gguf import smollm2_gguf
    from harness.models.llamacpp import LlamaCppBackend

    return LlamaCppBackend(resolve_model(f"llamacpp:{smollm2_gguf()}?n_threads=2"))


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory):
    """tests/echo_server.py as a real loopback server (aliases smollm2 and candidate) whose echo
    log-probabilities are right: `echo_server.base_url` is http://127.0.0.1:PORT/v1."""
    from tests.echo_server import EchoServer

    with EchoServer(log=tmp_path_factory.mktemp("echo") / "echo.log") as srv:
        yield srv


@pytest.fixture(scope="session")
def candidate_adapters(tmp_path_factory):
    """Real adapters for the #17 tests (tests/candidates_fixtures.py), made once per session."""
    from tests.candidates_fixtures import make_adapters

    return make_adapters(tmp_path_factory.mktemp("candidates"))


@pytest.fixture(scope="session")
def vllm(request, tmp_path_factory):
    """ONE real vLLM server (CPU build, its own cached environment: tests/envs.py vllm) per test
    session: the converted SmolLM2 in float32, and the trained test adapter `candidate_adapters.a`
    as the LoRA module `cand` (`vllm.adapter`). Skipped, saying how to build it, when the
    environment is missing."""
    from tests.vllm_server import VllmServer, vllm_python

    if vllm_python() is None:
        pytest.skip("the vLLM environment is not built: python tests/envs.py vllm (scripts/setup-test.sh)")
    from harness.models import resolve_model

    adapter = request.getfixturevalue("candidate_adapters").a  # only once the server can start
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with VllmServer(resolve_model("smollm2").weights, {"cand": adapter}, log=log) as srv:
        srv.adapter = adapter
        yield srv
