"""The training cache never lies (issue #14, item 4), with the real SmolLM2 and the real CLI.

Two short trainings in all (2 steps each, tiny sequences, one torch thread). The cache lives in
a private TUNEGATE_CACHE_DIR whose `models/` links to the machine's converted SmolLM2, so
leftovers can be planted and checked without touching the user's cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import textwrap

import duckdb
import pytest

from harness.models import resolve_model
from tests.conftest import ROOT, run_cli

FACTS = [("What colour is the sky?", "blue"), ("What colour is grass?", "green")]
CRASH_BEFORE_REGISTER = (
    "import os, sys, trainers.run\n"
    "trainers.run.register_models = lambda *a, **k: os._exit(9)  # dies like kill -9, right there\n"
    "from tunegate.cli import main\n"
    "sys.argv = ['tunegate', *sys.argv[1:]]\n"
    "main()\n"
)


@pytest.fixture()
def cache(tmp_path):
    from harness.paths import cache_dir

    resolve_model("smollm2")  # converted once per machine, in the real cache
    iso = tmp_path / "cache"
    iso.mkdir()
    (iso / "models").symlink_to(cache_dir() / "models", target_is_directory=True)
    return iso


def _env(cache) -> dict[str, str]:
    return {"TUNEGATE_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}


def _config(tmp_path, lr: str = "2.0e-3"):
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in FACTS
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            name: cache
            data: {{train: train.jsonl}}
            lora: {{r: 4, target_modules: [q_proj, v_proj]}}
            training: {{max_steps: 2, batch_size: 4, learning_rate: {lr}, max_length: 64}}
            output_dir: {tmp_path / "adapter"}
            """
        )
    )
    return cfg


def _train(cfg, db, cache, *, crash: bool = False) -> subprocess.CompletedProcess:
    args = ["train", "sft", "-c", str(cfg), "--db", str(db), "--no-progress"]
    if not crash:
        return run_cli(*args, env=_env(cache))
    env = {**os.environ, **_env(cache)}
    cmd = [sys.executable, "-c", CRASH_BEFORE_REGISTER, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _snapshot(folder) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.iterdir()}


def _q(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_train_twice_trains_once_and_never_rewrites_the_adapter(tmp_path, cache):
    host, dead = platform.node(), _dead_pid()
    leftovers = [
        cache / "ckpt-abandoned",
        cache / f"ckpt-{dead}@{host}-x1",
        tmp_path / f".adapter.tmp-{dead}@{host}-x2",
    ]
    for p in leftovers:
        p.mkdir()
    (leftovers[1] / "optimizer.pt").write_bytes(b"half")  # a killed run's partial checkpoint
    live = cache / f"ckpt-{os.getpid()}@{host}-live"  # a running training's: must stay
    live.mkdir()
    (live / "x").write_bytes(b"busy")
    cfg, db = _config(tmp_path), tmp_path / "t.duckdb"

    first = _train(cfg, db, cache)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [p for p in leftovers if p.exists()] == [] and live.exists()
    adapter = tmp_path / "adapter"
    before = _snapshot(adapter)

    second = _train(cfg, db, cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "reused" in second.stdout and "nothing trained" in second.stdout
    assert _snapshot(adapter) == before  # same files, same inodes: not rewritten
    assert _q(db, "SELECT count(*), min(status) FROM training_runs") == [(1, "completed")]
    [(model_id, fp, path)] = _q(
        db, "SELECT model_id, fingerprint, adapter_path FROM models WHERE adapter_path IS NOT NULL"
    )
    cand = resolve_model(f"smollm2?adapter={adapter}")
    assert (model_id, fp, path) == (cand.model_id, cand.fingerprint, str(adapter))

    # Another config aimed at the same folder is refused, before any training: never overwritten.
    other = _train(_config(tmp_path, lr="1.0e-3"), db, cache)
    assert other.returncode == 2 and "already holds the adapter of another training" in other.stderr
    assert _snapshot(adapter) == before
    assert _q(db, "SELECT count(*) FROM training_runs") == [(1,)]


def test_crash_after_publishing_is_completed_by_the_next_run(tmp_path, cache):
    cfg, db = _config(tmp_path), tmp_path / "t.duckdb"
    crashed = _train(cfg, db, cache, crash=True)
    assert crashed.returncode == 9, crashed.stderr[-3000:]
    [(run_id, status, cand_id)] = _q(
        db, "SELECT training_run_id, status, candidate_model_id FROM training_runs"
    )
    assert (status, cand_id) == ("running", None)
    assert (tmp_path / "adapter" / "tunegate.json").is_file()  # published whole before the crash
    assert list(cache.glob("ckpt-*"))  # the dead process's checkpoint folder is left behind
    logged = _q(db, "SELECT count(*) FROM training_logs")[0][0]

    again = _train(cfg, db, cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reused" in again.stdout
    cand = resolve_model(f"smollm2?adapter={tmp_path / 'adapter'}")
    assert _q(db, "SELECT training_run_id, status, candidate_model_id, adapter_path FROM training_runs") == [
        (run_id, "completed", cand.model_id, str(tmp_path / "adapter"))
    ]
    assert _q(db, "SELECT fingerprint FROM models WHERE model_id = ?".replace("?", f"'{cand.model_id}'")) == [
        (cand.fingerprint,)
    ]
    history = json.loads((tmp_path / "adapter" / "tunegate.json").read_text())["log_history"]
    assert _q(db, "SELECT count(*) FROM training_logs")[0][0] == len(history) >= logged
    assert not list(cache.glob("ckpt-*"))


def test_sigterm_during_training_marks_it_interrupted_exits_143(tmp_path, cache):
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace("max_steps: 2", "max_steps: 40"))
    db = tmp_path / "t.duckdb"
    cmd = [sys.executable, "-m", "tunegate", "train", "sft", "-c", str(cfg), "--db", str(db)]
    env = {**os.environ, **_env(cache)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the plain progress line: training is under way
        if line.startswith("train: step"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    assert "is marked interrupted" in err and "--resume" not in err and "Traceback" not in err
    assert _q(db, "SELECT status, error FROM training_runs") == [("interrupted", "terminated (SIGTERM)")]
    assert not (tmp_path / "adapter").exists()
