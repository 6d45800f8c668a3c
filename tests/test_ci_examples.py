"""The CI examples parse, and every tunegate command and option they use exists in the CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer
import yaml

from harness.cli import app
from harness.gate import load_policy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "ci"


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
            words = shlex.split(line, comments=True)
            if words and words[0].endswith("tunegate"):
                out.append(words[1:])
    return out


@pytest.mark.parametrize("name", ["github-workflow.yml", "gitlab-ci.yml"])
def test_ci_example_commands_exist(name):
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    calls = _tunegate_invocations(doc)
    assert {c[0] for c in calls} >= {"run", "gate"}
    root = typer.main.get_command(app)
    for words in calls:
        cmd = root
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
