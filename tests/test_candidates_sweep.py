"""Checkpoint sweeps (#17): `tunegate sweep` over a TRL run's checkpoints, the in-training callback,
the step chart in headless Chromium, and `gate --candidate best:SUITE/METRIC`."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.browser import Chromium, chromium_available
from tests.candidates_fixtures import FACTS, colours_suite, messages_jsonl
from tests.conftest import run_cli


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three checkpoints of one short TRL run, saved as TRL saves them (trained outside tunegate)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from harness.models import resolve_model

    out = tmp_path_factory.mktemp("trl-out")
    weights = resolve_model("smollm2").weights
    tok = AutoTokenizer.from_pretrained(weights)
    rows = [json.loads(line) for line in messages_jsonl(FACTS, repeat=2).splitlines()]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(weights),
        args=SFTConfig(
            output_dir=str(out),
            max_steps=3,
            save_steps=1,
            save_strategy="steps",
            save_only_model=True,
            per_device_train_batch_size=4,
            max_length=48,
            learning_rate=5e-3,
            logging_steps=1,
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
        ),
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    return out


def test_sweep_over_three_checkpoints_links_steps_and_draws_the_chart(checkpoints, tmp_path):
    from harness.gate.best import sweep_runs
    from harness.store import Store

    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == [
        "checkpoint-1",
        "checkpoint-2",
        "checkpoint-3",
    ]
    db, html = tmp_path / "s.duckdb", tmp_path / "sweep.html"
    r = run_cli(
        "sweep",
        "-m",
        "smollm2",
        "--checkpoints",
        str(checkpoints),
        "-s",
        str(colours_suite(tmp_path / "suite")),
        "--db",
        str(db),
        "--limit",
        "2",
        "--html",
        str(html),
        "--no-progress",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 models on 1 base load(s)" in r.stdout
    with Store(db) as s:
        rows = sweep_runs(s)
        runs = {step: s.get_run(run_id) for run_id, _, _, _, step, _, _ in rows}
    assert sorted(runs) == [0, 1, 2, 3] and len({r.model_id for r in runs.values()}) == 4
    sweep = runs[2].config["backend"]["candidate"]["sweep"]
    assert sweep["checkpoint"].endswith("checkpoint-2") and sweep["train_loss"] > 0
    assert runs[0].config["backend"]["candidate"]["role"] == "base"
    best = [line for line in r.stdout.splitlines() if line.startswith("best by colours/token_f1")]
    assert best, r.stdout
    # gate the best checkpoint by a metric
    policy = tmp_path / "p.yaml"
    policy.write_text(textwrap.dedent("rules:\n  - {suite: '*', metric: '*', max_error_rate: 0.0}\n"))
    g = run_cli(
        "gate",
        "--baseline",
        runs[0].run_id,
        "--candidate",
        "best:colours/token_f1",
        "--policy",
        str(policy),
        "--db",
        str(db),
    )
    assert g.returncode == 0, g.stdout + g.stderr
    step = int(best[0].split("step ")[1].split()[0])
    assert f"best:colours/token_f1 → step {step}" in g.stdout
    bad = run_cli(
        "gate",
        "--baseline",
        runs[0].run_id,
        "--candidate",
        "best:colours/nope",
        "--policy",
        str(policy),
        "--db",
        str(db),
    )
    assert bad.returncode == 2 and "no metric 'nope'" in bad.stderr
    text = html.read_text()
    assert "Checkpoints over training steps" in text and "★ best" in text
    if not chromium_available():
        pytest.skip("no Chromium here") if not __import__("os").environ.get("CI") else pytest.fail(
            "no Chromium"
        )
    with Chromium() as b:
        b.open(html.resolve().as_uri())
        n = b.eval("document.querySelectorAll('.step-charts svg').length")
        titles = b.eval(
            "[...document.querySelectorAll('.step-charts svg text')].map(t => t.textContent).join('|')"
        )
        assert not b.problems(), b.problems()
    assert n >= 3 and "colours/token_f1 vs step" in titles and "train / eval loss" in titles


def test_eval_during_training_stores_runs_per_step(tmp_path):
    from harness.store import Store
    from reports.leaderboard import sweep_data
    from trainers.config import load_config
    from trainers.eval_callback import EvalDuring
    from trainers.sft import train_sft

    (tmp_path / "train.jsonl").write_text(messages_jsonl(FACTS, repeat=2))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "name: live\ndata: {train: train.jsonl}\nlora: {r: 4, alpha: 8, target_modules: [q_proj]}\n"
        "training: {max_steps: 2, batch_size: 4, max_length: 48, learning_rate: 5.0e-3}\n"
        f"output_dir: {tmp_path / 'ad'}\n"
    )
    loaded = load_config(cfg, "sft")
    loaded.eval_during = EvalDuring([str(colours_suite(tmp_path / "suite"))], every=1, limit=2)
    db = tmp_path / "t.duckdb"
    cand = train_sft(loaded, db)
    with Store(db) as s:
        data = sweep_data(s, cand.training_run_id)
        n_logs = s.db.execute(
            "SELECT count(*) FROM training_logs WHERE training_run_id = ? AND split = 'train'",
            [cand.training_run_id],
        ).fetchone()[0]
    assert [p["step"] for p in data["points"]] == [1, 2] and data["training_run_id"] == cand.training_run_id
    assert n_logs == 2 and len(data["charts"]) == 3  # exact_match, token_f1, loss
    assert set(data["columns"]) == {"colours/exact_match", "colours/token_f1"}
    out = tmp_path / "steps.html"
    r = run_cli("report", "--sweep", cand.training_run_id, "-o", str(out), "--db", str(db))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "Checkpoints over training steps" in html and cand.training_run_id in html
