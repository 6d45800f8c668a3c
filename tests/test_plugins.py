"""Plugins: a third-party package, really installed, adds a backend, a metric, an aggregation and a
gate check through the `tunegate.plugins` entry point, and a suite YAML and a policy YAML use
them through the real CLI. Nothing of it is imported before a registry is read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_suite

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "tg-shout-plugin"
version = "0.1"

[project.entry-points."tunegate.plugins"]
shout = "tg_shout_plugin"
"""

PLUGIN = '''
"""A tunegate plugin: an `echo:` backend, a `shout_ratio` metric, a `median` aggregation and a
`min_wins` gate check."""
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from harness.gate.checks import gate_check
from harness.models.base import Capabilities, Generated, prepare_local
from harness.models.registry import BACKENDS, BackendEntry
from harness.models.resolve import ResolvedModel
from harness.models.spec import ModelSpec
from harness.stats import aggregation
from suites.metrics.base import METRICS, MetricResult

if os.environ.get("TG_PLUGIN_MARK"):  # the test's proof that this module was imported
    Path(os.environ["TG_PLUGIN_MARK"]).write_text("imported")

TRANSFORMS = {"same": lambda t: t, "upper": str.upper}


def parse(raw, body, params):
    if body not in TRANSFORMS:
        from harness.errors import UserError
        raise UserError(f"echo: expects one of {sorted(TRANSFORMS)}, not '{body}'", field="model")
    return ModelSpec(raw=raw, kind="echo", path=body)


def resolve(spec):
    fp = hashlib.sha256(f"echo:{spec.path}".encode()).hexdigest()
    return ResolvedModel(spec, None, None, {}, fp, None)


class EchoBackend:
    """Answers with the prompt, transformed."""

    capabilities = Capabilities(requests=frozenset({"generate"}))

    def __init__(self, resolved):
        self.resolved = resolved
        self.calls = {}

    def prepare(self, request):
        return prepare_local(request, lambda msgs: "\\n".join(m["content"] for m in msgs))

    def generate(self, requests, params, batch_size, seed=None):
        self.calls["generate"] = self.calls.get("generate", 0) + 1
        f = TRANSFORMS[self.resolved.spec.path]
        yield [(i, Generated(f(r.prompt or ""), None, None, 0.0)) for i, r in enumerate(requests)]

    def loglikelihood(self, requests, batch_size):
        raise NotImplementedError

    def rolling_loglikelihood(self, texts, max_length, stride, batch_size):
        raise NotImplementedError

    def describe(self):
        return {"backend": "echo", "transform": self.resolved.spec.path}

    def scoring(self):
        return {}

    def preflight(self, needed, what):
        pass


BACKENDS.register(BackendEntry(
    "echo", parse=f"{__name__}:parse", resolve=f"{__name__}:resolve", open=f"{__name__}:EchoBackend",
    summary="answers with the prompt (test plugin)",
))


@aggregation("median")
def median(s):
    v = s.value
    return lambda idx: np.median(v[idx], axis=1)


@METRICS.register("shout_ratio", higher_is_better=True, aggregation="median", binary=False)
def shout_ratio():
    """Share of the output's letters that are capitals."""

    def score(prediction, example):
        letters = [c for c in prediction if c.isalpha()]
        return MetricResult(sum(c.isupper() for c in letters) / len(letters) if letters else 0.0)

    return score


@gate_check("min_wins", "metric", {"min_wins": int | None})
def min_wins(ctx):
    """The candidate must be better on at least this many examples."""
    need, wins = ctx.rule.value("min_wins"), ctx.paired.wins
    ok = wins >= need
    yield ctx.result("min_wins", need, wins, ok, f"{wins} examples better (needs >= {need})")
'''

SUITE = """
name: shout
kind: task
data: data.jsonl
prompt: "{{ question }}"
reference: answer
metrics: [shout_ratio, exact_match]
"""
DATA = "".join(
    json.dumps({"id": f"q{i}", "question": f"say something number {i}", "answer": "x"}) + "\n"
    for i in range(12)
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The plugin package built and installed with pip into its own folder (no index, no network)."""
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "src"
    (pkg / "tg_shout_plugin").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "tg_shout_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    target = root / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--target", str(target), str(pkg)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(target.glob("tg_shout_plugin-0.1.dist-info/entry_points.txt"))
    return target


def _env(site: Path, mark: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "TG_PLUGIN_MARK": str(mark), "HF_HUB_OFFLINE": "1"}


def test_help_and_start_up_import_no_plugin(site, tmp_path):
    mark = tmp_path / "imported"
    r = run_cli("--help", env=_env(site, mark))
    assert r.returncode == 0, r.stderr
    assert not mark.exists(), "tunegate --help imported the plugin"
    code = (
        "import sys, tunegate.cli; print(sorted({'tg_shout_plugin', 'harness.plugins'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **_env(site, mark)},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # neither the plugin nor harness.plugins at start-up
    assert not mark.exists()


def test_backend_metric_aggregation_and_gate_check_from_yaml(site, tmp_path):
    mark = tmp_path / "imported"
    env = _env(site, mark)
    suite = write_suite(tmp_path / "suite", SUITE, DATA)
    db = tmp_path / "p.duckdb"
    for model in ("echo:same", "echo:upper"):
        r = run_cli("run", "--model", model, "--suite", str(suite), "--db", str(db), "--no-progress", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    assert mark.exists()
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {suite: shout, metric: shout_ratio, min_wins: 12, min: 0.9}\n")
    gate = ("gate", "--policy", str(policy), "--db", str(db), "--json")
    passed = run_cli(*gate, "--baseline", "echo:same", "--candidate", "echo:upper", env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    rows = {c["check"]: c for c in json.loads(passed.stdout)["checks"]}
    assert rows["min_wins"]["observed"] == 12 and rows["min_wins"]["passed"]
    assert rows["min"]["observed"] == 1.0  # the median of the capitals' share: every output shouts
    failed = run_cli(*gate, "--baseline", "echo:upper", "--candidate", "echo:same", env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    rows = {c["check"]: c for c in json.loads(failed.stdout)["checks"]}
    assert rows["min_wins"]["observed"] == 0 and not rows["min_wins"]["passed"]
    assert rows["min"]["observed"] == 0.0


def test_a_plugin_key_is_validated_like_a_built_in(site, tmp_path):
    env = _env(site, tmp_path / "imported")
    suite = write_suite(tmp_path / "suite", SUITE, DATA)
    db = tmp_path / "p.duckdb"
    for model in ("echo:same", "echo:upper"):
        r = run_cli("run", "-m", model, "-s", str(suite), "--db", str(db), "--no-progress", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    policy = tmp_path / "policy.yaml"
    gate = (
        "gate",
        "--policy",
        str(policy),
        "--db",
        str(db),
        "--baseline",
        "echo:same",
        "--candidate",
        "echo:upper",
    )
    policy.write_text("rules:\n  - {suite: shout,\n     min_wins: lots}\n")
    r = run_cli(*gate, env=env)
    assert r.returncode == 2
    assert "policy.yaml:3 field 'rules.0.min_wins'" in r.stderr.replace("\n", "")
    policy.write_text("rules:\n  - {suite: shout, min_winz: 3}\n")
    r = run_cli(*gate, env=env)
    assert r.returncode == 2
    assert "unknown key (not allowed here); did you mean 'min_wins'?" in r.stderr.replace("\n", "")
    policy.write_text("rules:\n  - {suite: shout, metric: shout_ratio, min_wins: 3}\n")
    assert run_cli(*gate, env=env).returncode == 0
    r = run_cli(*gate)  # without the plugin on the path its key is no policy key
    assert r.returncode == 2
    assert "field 'rules.0.min_wins': unknown key" in r.stderr.replace("\n", "")


def test_a_broken_plugin_names_itself(tmp_path):
    site = tmp_path / "site"
    (site / "tg_broken-0.1.dist-info").mkdir(parents=True)
    (site / "tg_broken-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tg-broken\nVersion: 0.1\n"
    )
    (site / "tg_broken-0.1.dist-info" / "entry_points.txt").write_text(
        "[tunegate.plugins]\nbroken = tg_broken\n"
    )
    (site / "tg_broken.py").write_text("import no_such_module_here\n")
    env = {"PYTHONPATH": str(site)}
    assert run_cli("--help", env=env).returncode == 0
    suite = write_suite(tmp_path / "suite", SUITE.replace("shout_ratio, ", ""), DATA)
    r = run_cli("run", "-m", "smollm2", "-s", str(suite), "--db", str(tmp_path / "x.duckdb"), env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.replace("\n", "")
    assert "tunegate plugin 'broken' (entry point tunegate.plugins: broken = tg_broken) failed to load" in err
    assert "No module named 'no_such_module_here'" in err
