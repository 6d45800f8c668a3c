"""Cheap real adapters for the #17 tests: trained by tunegate (2 steps, different seeds), a no-op
(peft's own init, lora_B = 0), one made for another base (hidden size 64), and one saved by
plain peft with its own chat template (as LLaMA-Factory/axolotl folders come)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

FACTS = [
    ("What colour is the sky?", "blue"),
    ("What colour is grass?", "green"),
    ("What colour is snow?", "white"),
    ("What colour is coal?", "black"),
]
OWN_TEMPLATE = (
    "{% for m in messages %}<<{{ m['role'] }}>> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<<assistant>> {% endif %}"
)


@dataclass(frozen=True)
class Adapters:
    root: Path
    a: Path
    b: Path
    noop: Path
    wrong: Path
    external: Path
    db: Path
    suite: Path


def messages_jsonl(pairs, repeat: int = 1) -> str:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in pairs
    ]
    return "".join(json.dumps(r) + "\n" for r in rows * repeat)


def train_adapter(folder: Path, name: str, seed: int, db: Path, steps: int = 2) -> Path:
    from trainers.config import load_config
    from trainers.sft import train_sft

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text(messages_jsonl(FACTS, repeat=2))
    cfg = folder / f"{name}.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            name: {name}
            data: {{train: train.jsonl}}
            lora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}
            training: {{max_steps: {steps}, batch_size: 4, learning_rate: 5.0e-3,
                       max_length: 48, seed: {seed}}}
            output_dir: {folder / name}
            """
        )
    )
    return train_sft(load_config(cfg, "sft"), db).adapter_path


def make_adapters(root: Path) -> Adapters:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from harness.models import resolve_model

    torch.set_num_threads(1)
    db = root / "t.duckdb"
    a = train_adapter(root, "cand-a", 1, db)
    b = train_adapter(root, "cand-b", 2, db)
    weights = resolve_model("smollm2").weights
    base = AutoModelForCausalLM.from_pretrained(weights)
    noop = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))  # lora_B = 0
    noop.save_pretrained(root / "noop")
    base = AutoModelForCausalLM.from_pretrained(weights)
    torch.manual_seed(0)
    ext = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    ext.save_pretrained(root / "external")
    (root / "external" / "tokenizer_config.json").write_text(json.dumps({"chat_template": OWN_TEMPLATE}))
    tiny = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=49152,
        )
    )
    wrong = get_peft_model(
        tiny, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    wrong.save_pretrained(root / "wrong")
    cfg = json.loads((root / "wrong" / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "tiny-llama-64"
    (root / "wrong" / "adapter_config.json").write_text(json.dumps(cfg))
    suite = colours_suite(root)
    return Adapters(root, a, b, root / "noop", root / "wrong", root / "external", db, suite)


def colours_suite(root: Path) -> Path:
    """A 4-question task suite (exact_match, token_f1) on the training facts."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "qa.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "q": q, "a": ans}) + "\n" for i, (q, ans) in enumerate(FACTS))
    )
    suite = root / "qa.yaml"
    suite.write_text(
        "name: colours\nkind: task\ndata: qa.jsonl\nprompt: '{{ q }}'\nreference: a\n"
        "generation: {max_new_tokens: 6}\nmetrics: [exact_match, token_f1]\n"
    )
    return suite
