"""Training with the real SmolLM2 on CPU: LoRA and QLoRA SFT, DPO, logs, lineage, merge, bad input.

Runs are a handful of steps on tiny sequences, enough to show that loss falls and weights
move. Torch is held to one thread here: on a shared 2-core machine, two OpenMP threads
competing with other processes are ~10x slower than one.
"""

from __future__ import annotations

import json
import shutil
import statistics
import textwrap

import pytest

from harness.models import resolve_model
from harness.store import Store
from harness.store.training import get_training_run, lineage, training_logs
from tests.conftest import run_cli, table_dump
from trainers.config import BUNDLED_DATA, load_config
from trainers.data import files_hash

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
FACTS = [("What colour is the sky?", "blue"), ("What colour is grass?", "green"),
         ("What colour is snow?", "white"), ("What colour is coal?", "black")]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _messages(pairs, repeat=1):
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs
    ]
    return "".join(json.dumps(r) + "\n" for r in rows * repeat)


def _config(folder, body: str, name="cfg.yaml"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    """A LoRA SFT candidate on 4 facts repeated 4 times, with the facts as validation data."""
    from trainers.sft import train_sft

    d = tmp_path_factory.mktemp("sft")
    (d / "train.jsonl").write_text(_messages(FACTS, repeat=4))
    (d / "val.jsonl").write_text(_messages(FACTS))
    cfg = _config(
        d,
        f"""
        name: facts
        data: {{train: train.jsonl, validation: val.jsonl}}
        training: {{max_steps: 6, batch_size: 4, learning_rate: 2.0e-3, max_length: 64, eval_steps: 3}}
        output_dir: {d / "adapter"}
        """,
    )
    db = d / "t.duckdb"
    cand = train_sft(load_config(cfg, "sft"), db)
    return cand, db, cfg, d


def _lora_b_all_nonzero(adapter) -> bool:
    from safetensors.torch import load_file

    b = {k: v for k, v in load_file(str(adapter / "adapter_model.safetensors")).items() if "lora_B" in k}
    return bool(b) and all(v.abs().sum() > 0 for v in b.values())  # they start at exactly zero


def test_sft_lora_learns_and_logs_every_step(sft):
    cand, db, cfg, d = sft
    with Store(db) as store:
        run = get_training_run(store, cand.training_run_id)
        train = training_logs(store, run.training_run_id, "train")
        evals = training_logs(store, run.training_run_id, "eval")
        assert len(training_logs(store, run.training_run_id, "summary")) == 1
        model = store.db.execute(
            "SELECT base_model_id, adapter_path FROM models WHERE model_id = ?", [cand.model_id]
        ).fetchone()
    assert run.status == "completed" and run.kind == "sft" and run.seed == 42
    assert run.dataset_hash == files_hash([d / "train.jsonl", d / "val.jsonl"])
    assert run.config["lora"] == {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
    assert [r["step"] for r in train] == list(range(1, 7)) and [r["step"] for r in evals] == [3, 6]
    losses = [r["loss"] for r in train]
    assert statistics.mean(losses[-2:]) < statistics.mean(losses[:2]) * 0.7, losses
    assert evals[1]["loss"] < evals[0]["loss"]
    assert train[0]["learning_rate"] < train[1]["learning_rate"]  # warmup, then cosine decay
    assert train[-1]["learning_rate"] < train[1]["learning_rate"]
    base = resolve_model("smollm2")
    assert model == (base.model_id, str(d / "adapter")) and cand.parent_model_id == base.model_id
    assert cand.spec == f"smollm2?adapter={d / 'adapter'}"
    assert _lora_b_all_nonzero(cand.adapter_path)


def test_qlora_4bit_trains_adapters_on_a_4bit_base(tmp_path, monkeypatch):
    import trainers.sft
    import trainers.skeleton
    from trainers.model import load_trainable

    seen = {}

    def spy(loaded):
        seen["tm"] = load_trainable(loaded)
        return seen["tm"]

    monkeypatch.setattr(trainers.skeleton, "load_trainable", spy)  # the recipe SFT and DPO share
    (tmp_path / "train.jsonl").write_text(_messages(FACTS, repeat=3))
    cfg = _config(
        tmp_path,
        f"""
        name: facts-4bit
        data: {{train: train.jsonl}}
        quantization: {{load_in_4bit: true}}
        lora: {{target_modules: [q_proj, v_proj]}}
        training: {{max_steps: 5, batch_size: 4, learning_rate: 3.0e-3, max_length: 64, warmup_ratio: 0}}
        output_dir: {tmp_path / "adapter"}
        """,
    )
    cand = trainers.sft.train_sft(load_config(cfg, "sft"), tmp_path / "t.duckdb")
    model = seen["tm"].model
    assert model.is_loaded_in_4bit
    attn = model.model.layers[0].self_attn
    assert type(attn.q_proj.base_layer).__name__ == "Linear4bit"  # frozen NF4 weight under the adapter
    assert attn.q_proj.base_layer.weight.quant_state.quant_type == "nf4"
    assert type(attn.k_proj).__name__ == "Linear4bit"  # not targeted: no adapter
    with Store(tmp_path / "t.duckdb") as store:
        losses = [r["loss"] for r in training_logs(store, cand.training_run_id, "train")]
    assert losses[-1] < losses[0], losses
    assert _lora_b_all_nonzero(cand.adapter_path)


def test_dpo_on_the_sft_candidate_raises_the_margin_and_keeps_lineage(sft, tmp_path):
    from trainers.dpo import train_dpo

    sft_cand, db, _, _ = sft
    pairs = BUNDLED_DATA["finetune-dpo"].read_text().splitlines()[:4] * 2  # a tiny repeated set
    (tmp_path / "pairs.jsonl").write_text("\n".join(pairs) + "\n")
    cfg = _config(
        tmp_path,
        f"""
        kind: dpo
        name: facts-dpo
        model: "smollm2?adapter={sft_cand.adapter_path}"
        data: {{train: pairs.jsonl}}
        beta: 0.1
        training: {{max_steps: 2, batch_size: 4, learning_rate: 1.0e-3, max_length: 64, warmup_ratio: 0}}
        output_dir: {tmp_path / "dpo"}
        """,
    )
    cand = train_dpo(load_config(cfg, "dpo"), db)
    with Store(db) as store:
        logs = training_logs(store, cand.training_run_id, "train")
        chain = lineage(store, cand.model_id)
        run = get_training_run(store, cand.training_run_id)
    assert run.kind == "dpo" and run.config["beta"] == 0.1
    assert logs[0]["reward_margin"] == pytest.approx(0.0, abs=1e-6)  # policy starts as the reference
    assert logs[-1]["reward_margin"] > 0 and logs[-1]["reward_accuracy"] is not None
    assert cand.parent_model_id == sft_cand.model_id
    assert [c["model_id"] for c in chain] == [
        cand.model_id,
        sft_cand.model_id,
        resolve_model("smollm2").model_id,
    ]
    assert [c["kind"] for c in chain] == ["dpo", "sft", None]


def test_merge_matches_base_plus_adapter(sft, tmp_path):
    import torch

    from trainers.merge import merge_adapter

    cand, db, _, _ = sft
    res = merge_adapter(cand.spec, tmp_path / "merged", db=db)
    assert res.max_abs_diff <= 1e-4
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert not (tmp_path / "merged" / "adapter_config.json").exists()

    def logits(spec, dtype):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        r = resolve_model(spec)
        tok = AutoTokenizer.from_pretrained(r.weights)
        model = AutoModelForCausalLM.from_pretrained(r.weights, dtype=dtype)
        if r.adapter:
            model = PeftModel.from_pretrained(model, str(r.adapter))
        chat = [{"role": "user", "content": "What colour is the sky? Answer in one word."}]
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"]
        with torch.inference_mode():
            return model.eval()(input_ids=torch.tensor([ids])).logits[0].double()

    # The merge is exact up to float32 rounding of the merged weights (compared in float64) …
    merged, adapted = logits(f"hf:{res.out}", torch.float64), logits(cand.spec, torch.float64)
    assert (merged - adapted).abs().max() <= 1e-4
    # … and in float32, as deployed, within float32 forward noise.
    assert (logits(f"hf:{res.out}", torch.float32) - logits(cand.spec, torch.float32)).abs().max() <= 1e-3
    assert (adapted - logits("smollm2", torch.float64)).abs().max() > 1e-2  # the adapter changes the model
    with Store(db) as store:
        parent = store.db.execute(
            "SELECT base_model_id FROM models WHERE model_id = ?", [res.model_id]
        ).fetchone()
    assert parent == (cand.model_id,)


def test_early_stopping_when_eval_loss_rises(tmp_path):
    from trainers.sft import train_sft

    # Train on one answer per question, evaluate on contradicting answers: eval loss can only rise.
    (tmp_path / "train.jsonl").write_text(_messages(FACTS, repeat=4))
    (tmp_path / "val.jsonl").write_text(_messages([(q, "purple with orange dots") for q, _ in FACTS]))
    cfg = _config(
        tmp_path,
        f"""
        name: stop
        data: {{train: train.jsonl, validation: val.jsonl}}
        training: {{max_steps: 8, batch_size: 4, learning_rate: 3.0e-3, max_length: 64, warmup_ratio: 0,
                    eval_steps: 1, early_stopping_patience: 2}}
        output_dir: {tmp_path / "adapter"}
        """,
    )
    cand = train_sft(load_config(cfg, "sft"), tmp_path / "t.duckdb")
    s = cand.summary
    assert s["stopped_early"] and s["steps"] < 8, s
    assert s["best_step"] == s["steps"] - 2  # the best checkpoint is the one restored and saved


def test_cached_adapter_is_registered_in_a_fresh_store(sft, tmp_path):
    from trainers.quickstart import quickstart_training

    cand, db, cfg, _ = sft
    again = quickstart_training(tmp_path / "fresh.duckdb", config=cfg)
    assert again.reused and again.spec == cand.spec and again.model_id == cand.model_id
    with Store(tmp_path / "fresh.duckdb") as fresh, Store(db) as orig:
        assert get_training_run(fresh, cand.training_run_id).status == "completed"
        n = [len(training_logs(s, cand.training_run_id)) for s in (fresh, orig)]
        assert n[0] == n[1] > 0
        assert [c["model_id"] for c in lineage(fresh, cand.model_id)][-1] == resolve_model("smollm2").model_id


def test_train_cli_with_eval_compares_candidate_to_base(tmp_path):
    (tmp_path / "train.jsonl").write_text(_messages(FACTS, repeat=2))
    cfg = _config(
        tmp_path,
        f"""
        name: cli
        data: {{train: train.jsonl}}
        training: {{max_steps: 2, batch_size: 4, max_length: 64}}
        output_dir: {tmp_path / "adapter"}
        """,
    )
    db = tmp_path / "t.duckdb"
    r = run_cli("train", "sft", "-c", str(cfg), "--eval", "finetune-qa", "--limit", "2", "--db", str(db),
                "--no-progress", env=ONE_THREAD)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "candidate m-" in r.stdout and "comparison" in r.stdout and "exact_match" in r.stdout
    with Store(db) as store:
        runs = store.db.execute(
            "SELECT m.spec FROM runs JOIN models m USING (model_id) ORDER BY started_at"
        ).fetchall()
        assert runs == [("smollm2",), (f"smollm2?adapter={tmp_path / 'adapter'}",)]
        assert store.db.execute("SELECT count(*) FROM training_runs").fetchone() == (1,)
        # the training data was scanned against the eval suite, linked to its training run (#15)
        scans = store.db.execute(
            "SELECT s.training_run_id = t.training_run_id, s.suites "
            "FROM contamination_scans s, training_runs t"
        ).fetchall()
        assert len(scans) == 1 and scans[0][0] and "finetune-qa" in scans[0][1]
    assert "contamination: training data vs eval suites" in r.stdout


# -- bad input: a clear message, exit 2, nothing written ------------------------------------
SFT_CFG = """
name: bad
data: {{train: {data}}}
{extra}
training: {{max_steps: 1, batch_size: 2, max_length: 32}}
output_dir: {out}
"""
BAD = {
    "unknown format": ('{"text": "hello"}\n', "", "unknown data format"),
    "no usable rows": ('{"instruction": "Say hi.", "output": ""}\n' * 3, "", "no usable records"),
    "bad json line": (_messages(FACTS) + "{oops\n", "", "train.jsonl:5: invalid JSON"),
    "unknown config key": (_messages(FACTS), "lora: {rank: 8}", "cfg.yaml:4 field 'lora.rank': unknown key"),
    "missing target module": (
        _messages(FACTS),
        "lora: {target_modules: [q_proj, qkv_proj]}",
        "target module(s) qkv_proj not in this model; its linear modules are: down_proj, gate_proj, k_proj",
    ),
    "4-bit without bitsandbytes": (
        _messages(FACTS),
        "quantization: {load_in_4bit: true}",
        "needs a working bitsandbytes",
    ),
}


@pytest.fixture()
def seeded_db(sft, tmp_path):
    """A copy of a store holding a finished training run and its candidate."""
    path = tmp_path / "keep.duckdb"
    shutil.copy(sft[1], path)
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_training_input_exits_2_and_stores_nothing(case, seeded_db, tmp_path):
    data, extra, message = BAD[case]
    (tmp_path / "train.jsonl").write_text(data)
    cfg = _config(tmp_path, SFT_CFG.format(data="train.jsonl", extra=extra, out=tmp_path / "adapter"))
    env = dict(ONE_THREAD)
    if case == "4-bit without bitsandbytes":  # a bitsandbytes build that cannot load on this machine
        fake = tmp_path / "fake"
        fake.mkdir()
        (fake / "bitsandbytes.py").write_text("raise ImportError('no native library for this CPU')\n")
        env["PYTHONPATH"] = str(fake)
    before = table_dump(seeded_db)
    r = run_cli("train", "sft", "-c", str(cfg), "--db", str(seeded_db), env=env)
    assert r.returncode == 2, r.stderr[-3000:]
    assert message in r.stderr.replace("\n", ""), r.stderr
    assert "Traceback" not in r.stderr
    assert table_dump(seeded_db) == before
    assert not (tmp_path / "adapter").exists()


def test_other_bad_commands_exit_2(seeded_db, tmp_path):
    (tmp_path / "sft.jsonl").write_text(_messages(FACTS))
    cfg = _config(tmp_path, "kind: dpo\nname: x\ndata: {train: sft.jsonl}\n")
    before = table_dump(seeded_db)
    r = run_cli("train", "dpo", "-c", str(cfg), "--db", str(seeded_db), env=ONE_THREAD)
    assert r.returncode == 2 and "needs preference pairs" in r.stderr
    r = run_cli("train", "sft", "-c", str(cfg), "--db", str(seeded_db))
    assert r.returncode == 2 and "this is a dpo config; use `tunegate train dpo`" in r.stderr
    r = run_cli("merge", "smollm2", "--out", str(tmp_path / "m"), "--db", str(seeded_db))
    assert r.returncode == 2 and "not an adapter model spec" in r.stderr
    assert table_dump(seeded_db) == before
