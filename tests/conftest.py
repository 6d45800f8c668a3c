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
# Under pytest-xdist (scripts/test.sh runs one worker per core) each worker's torch, and every CLI
# it starts, gets one thread: two 2-thread OpenMP pools on 2 cores spin against each other.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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
    with LlamaServer(log=log, aliases=("smollm2", "candidate")) as srv:
        yield srv


@pytest.fixture()
def store(tmp_path):
    from harness.store import Store

    with Store(tmp_path / "t.duckdb") as s:
        yield s


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """`tunegate ARGS` as a user (or CI) runs it: a process of its own, its exit status, its output.
    Forked from the worker's preloaded server (tests/cli_server.py: torch and transformers imported
    once, not per call) unless the call needs what a fork cannot give, then a fresh subprocess."""
    env = {**os.environ, "COLUMNS": "200", **kw.pop("env", {})}
    cmd = [sys.executable, "-m", "tunegate", *args]
    if not kw and _loads_a_model(args):
        server = _cli_server()
        if server is not None and server.can_run(env):
            return server.run(cmd, args, cwd or ROOT, env, timeout)
    kw.setdefault("capture_output", True)
    return subprocess.run(cmd, cwd=cwd or ROOT, env=env, text=True, timeout=timeout, **kw)


_CLI_SERVER: list = []


def _loads_a_model(args: tuple[str, ...]) -> bool:
    from tests.cli_server import MODEL_COMMANDS

    command = next((a for a in args if not a.startswith("-")), "")
    return command in MODEL_COMMANDS


def _cli_server():
    """This process's fork server, started on first use (None when turned off or it failed)."""
    if not _CLI_SERVER:
        server = None
        if os.environ.get("TUNEGATE_TEST_FORK", "1") != "0":
            from tests.cli_client import CliServer

            server = CliServer.start(ROOT)
        _CLI_SERVER.append(server)
    return _CLI_SERVER[0]


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
    from tests.llama_server import LLAMA_THREADS

    return LlamaCppBackend(resolve_model(f"llamacpp:{smollm2_gguf()}?n_threads={LLAMA_THREADS}"))


@pytest.fixture(scope="session")
def echo_server(tmp_path_factory):
    """tests/echo_server.py as a real loopback server (aliases smollm2 and candidate) whose echo
    log-probabilities are right: `echo_server.base_url` is http://127.0.0.1:PORT/v1."""
    from tests.echo_server import EchoServer

    with EchoServer(log=tmp_path_factory.mktemp("echo") / "echo.log") as srv:
        yield srv


def once_per_run(tmp_path_factory, name: str, make):
    """`make(folder)` run once per test run, whatever the number of xdist workers: the first
    worker makes it under a file lock in the run's shared temporary folder, the others wait and
    read the pickled result."""
    import pickle

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # popen-gwN's parent: the same folder for every worker of this run
    folder, done = root / f"shared-{name}", root / f"shared-{name}.pickle"
    with FileLock(str(root / f"shared-{name}.lock")):
        if not done.exists():
            folder.mkdir(exist_ok=True)
            done.write_bytes(pickle.dumps(make(folder)))
    return pickle.loads(done.read_bytes())


@pytest.fixture(scope="session")
def side_env(tmp_path_factory):
    """`side_env(name)`: tests/envs.py's environment with tunegate from this checkout installed,
    once per run (a reinstall under a test running in another worker would pull files away)."""
    from tests import envs

    return lambda name: once_per_run(tmp_path_factory, f"env-{name}", lambda _: envs.install(name))


@pytest.fixture(scope="session")
def candidate_adapters(tmp_path_factory):
    """Real adapters for the #17 tests (tests/candidates_fixtures.py), trained once per run."""
    from tests.candidates_fixtures import make_adapters

    return once_per_run(tmp_path_factory, "candidates", make_adapters)


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


HEAVY_FIRST = (
    "test_llamacpp.py",
    "test_vllm_inprocess.py",
    "test_vllm_server.py",
    "test_endpoint.py",
    "test_verdict_readable.py",
    "test_cli.py",
    "test_hostile_outputs.py",
    "test_hostile_limits.py",
    "test_endpoint_prefix.py",
    "test_trainers.py",
)
"""The files that take longest (measured with --durations=0), started first so that no worker is
left with one of them at the end while the other idles (scripts/test.sh: --dist loadfile)."""


@pytest.hookimpl(tryfirst=True)  # before pytest-random-order, which shuffles when asked to
def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest as collected
