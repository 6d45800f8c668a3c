"""`pip install tunegate` (no extras) is enough for a CI gate job, and has no torch in it.

A cached core-only virtual environment (tests/envs.py; the dependencies are built once per
pyproject.toml, tunegate itself is reinstalled from this checkout each session) runs score,
compare, gate and report on a DuckDB file, and an `openai:` run against the real llama.cpp
server. A command that needs an extra says which one, exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "suites" / "builtin" / "data" / "finetune_qa.jsonl"


@pytest.fixture(scope="module")
def core_env(side_env) -> Path:
    return side_env("core")


def _tunegate(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(env / "bin" / "tunegate"), *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _predictions(path: Path, wrong_every: int) -> Path:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    with path.open("w") as f:
        for i, r in enumerate(rows):
            f.write(json.dumps({"id": r["id"], "output": "no idea" if i % wrong_every == 0 else r["answer"]}))
            f.write("\n")
    return path


def test_core_env_has_no_torch(core_env):
    for module in ("torch", "transformers", "peft", "bitsandbytes", "trl", "lm_eval"):
        p = subprocess.run([str(core_env / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
        assert p.returncode != 0, f"{module} is importable in the core-only install"
    # and tunegate there is this checkout's, installed as a package (not an editable path)
    p = subprocess.run(
        [str(core_env / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert p.returncode == 0, p.stderr
    assert str(core_env) in p.stdout


def test_score_compare_gate_report_without_torch(core_env, tmp_path):
    db = str(tmp_path / "gate.duckdb")
    runs = []
    for name, every in (("base", 3), ("cand", 5)):
        preds = _predictions(tmp_path / f"{name}.jsonl", every)
        p = _tunegate(
            core_env,
            "score",
            "-p",
            str(preds),
            "-s",
            "finetune-qa",
            "--db",
            db,
            "--no-progress",
            cwd=tmp_path,
        )
        assert p.returncode == 0, p.stderr
        runs.append(p.stdout.split()[0])
    assert all(r.startswith("r-") for r in runs), runs

    p = _tunegate(core_env, "compare", *runs, "--db", db, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "exact_match" in p.stdout and "token_f1" in p.stdout

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "name: ci\nrules:\n  - suite: finetune-qa\n    metric: exact_match\n    max_drop: 0.5\n"
        "  - suite: '*'\n    metric: '*'\n    max_error_rate: 0.0\n"
    )
    junit, summary = tmp_path / "gate.xml", tmp_path / "gate.md"
    p = _tunegate(
        core_env,
        *("gate", "--baseline", runs[0], "--candidate", runs[1], "--policy", str(policy), "--db", db),
        *("--junit", str(junit), "--summary", str(summary)),
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "<testsuite" in junit.read_text() and summary.read_text().strip()

    html = tmp_path / "r.html"
    p = _tunegate(core_env, "report", *runs, "--db", db, "-o", str(html), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "finetune-qa" in html.read_text()


def test_missing_extra_names_the_install(core_env, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cases = [
        (("run", "--model", f"hf:{model}", "--suite", "finetune-qa", "--limit", "1"), "local"),
        (("run", "--model", f"hf:{model}", "--suite", "general-mini", "--limit", "1"), "local"),
    ]
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(
        f"kind: sft\nname: t\nmodel: hf:{model}\n"
        f"data:\n  train: {ROOT / 'trainers/data/finetune_sft.jsonl'}\ntraining:\n  max_steps: 1\n"
    )
    cases.append((("train", "sft", "-c", str(cfg)), "train"))
    for args, extra in cases:
        p = _tunegate(core_env, *args, "--db", str(tmp_path / "x.duckdb"), cwd=tmp_path)
        assert p.returncode == 2, p.stdout + p.stderr
        assert f"pip install 'tunegate[{extra}]'" in p.stderr, (args, p.stderr)
        assert "Traceback" not in p.stderr


def test_openai_backend_runs_in_core(core_env, llama, tmp_path):
    spec = f"openai:smollm2@{llama.base_url}"
    db = str(tmp_path / "e.duckdb")
    p = _tunegate(
        core_env,
        "run",
        "--model",
        spec,
        "--suite",
        "finetune-qa",
        "--limit",
        "2",
        "--db",
        db,
        "--no-progress",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    p = _tunegate(core_env, "runs", "--db", db, "--json", cwd=tmp_path)
    if p.returncode == 0 and p.stdout.lstrip().startswith(("[", "{")):
        assert "finetune-qa" in p.stdout
