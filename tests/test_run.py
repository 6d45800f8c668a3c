"""The runner on the real SmolLM2: storage, cache, batching, perplexity windows."""

from __future__ import annotations

import json
import math

import pytest

from harness.results import summarize_run
from harness.runner import RunOptions, run_suite
from suites import load_suite
from tests.conftest import write_suite

QA_YAML = """name: mini-qa
kind: task
data: data.jsonl
prompt: "Answer in one word. {{ q }}"
reference: a
generation: {max_new_tokens: 8}
metrics: [exact_match, token_f1, contains]
"""
QA_DATA = "".join(
    json.dumps({"id": f"q{i}", "q": q, "a": a}) + "\n"
    for i, (q, a) in enumerate(
        [
            ("What colour is the sky on a clear day?", "blue"),
            ("What is two plus two?", "four"),
            ("What is the capital of France?", "Paris"),
            ("Which animal says woof?", "dog"),
            ("What is frozen water called?", "ice"),
        ]
    )
)


@pytest.fixture()
def qa_suite(tmp_path):
    return load_suite(write_suite(tmp_path / "qa", QA_YAML, QA_DATA))


def test_run_stores_outputs_scores_and_metric_specs(store, smollm2, qa_suite):
    out = run_suite(store, smollm2, qa_suite, RunOptions(batch_size=2))
    assert (out.n_examples, out.n_new, out.n_errors) == (5, 5, 0)
    run = store.get_run(out.run_id)
    assert run.status == "completed" and run.model_id == smollm2.resolved.model_id
    assert store.db.execute("SELECT count(*) FROM scores WHERE run_id = ?", [out.run_id]).fetchone()[0] == 15
    outputs = store.db.execute(
        "SELECT g.output FROM run_examples JOIN generations g USING (cache_key) WHERE run_id = ?",
        [out.run_id],
    ).fetchall()
    assert len(outputs) == 5 and all(o[0] is not None for o in outputs)
    specs = {m["metric"]: m["spec"] for m in store.run_metrics(out.run_id)}
    assert specs["exact_match"]["args"]["ignore_case"] is True
    _, metrics = summarize_run(store, out.run_id)
    assert {m.metric for m in metrics} == {"exact_match", "token_f1", "contains"}
    assert all(m.summary.n == 5 for m in metrics)


def test_second_run_is_served_from_cache_with_zero_model_calls(store, smollm2, qa_suite):
    first = run_suite(store, smollm2, qa_suite, RunOptions(batch_size=4))
    calls = dict(smollm2.calls)
    second = run_suite(store, smollm2, qa_suite, RunOptions(batch_size=4))
    assert smollm2.calls == calls and second.model_calls == 0
    assert second.run_id != first.run_id
    cached = store.db.execute(
        "SELECT bool_and(cached) FROM run_examples WHERE run_id = ?", [second.run_id]
    ).fetchone()[0]
    assert cached is True
    a = store.scores(first.run_id, "token_f1")
    b = store.scores(second.run_id, "token_f1")
    assert a == b


def test_changed_generation_params_miss_the_cache(tmp_path, store, smollm2):
    suite = load_suite(
        write_suite(tmp_path / "qa", QA_YAML.replace("max_new_tokens: 8", "max_new_tokens: 3"), QA_DATA)
    )
    run_suite(store, smollm2, suite, RunOptions(limit=2))
    calls = smollm2.calls["generate"]
    suite2 = load_suite(
        write_suite(tmp_path / "qa2", QA_YAML.replace("max_new_tokens: 8", "max_new_tokens: 4"), QA_DATA)
    )
    run_suite(store, smollm2, suite2, RunOptions(limit=2))
    assert smollm2.calls["generate"] > calls


def test_left_padded_batch_matches_one_by_one(smollm2):
    from harness.config import GenerationParams

    prompts = [
        smollm2.render_chat([{"role": "user", "content": q}])
        for q in (
            "Name a colour.",
            "Write one short sentence about the sea and the wind at night.",
            "Say hi.",
        )
    ]
    params = GenerationParams(max_new_tokens=12)
    batched = {i: g.text for b in smollm2.generate(prompts, params, batch_size=3) for i, g in b}
    single = {i: g.text for b in smollm2.generate(prompts, params, batch_size=1) for i, g in b}
    assert batched == single


def test_chat_template_is_the_models(smollm2):
    text = smollm2.render_chat([{"role": "user", "content": "hi"}])
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def _reference_nll(model, tokenizer, text):
    """Full-context NLL of every token, predicted after BOS: the textbook definition."""
    import torch

    ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits[:-1], dim=-1)
    return -float(lp.gather(1, torch.tensor(ids[1:]).unsqueeze(1)).sum()), len(ids) - 1


def test_perplexity_single_window_equals_full_context(smollm2):
    text = "The quick brown fox jumps over the lazy dog. It was not amused."
    [[(_, r)]] = list(smollm2.rolling_loglikelihood([text], max_length=512, stride=512, batch_size=1))
    nll, n = _reference_nll(smollm2.model, smollm2.tokenizer, text)
    assert r.n_tokens == n
    assert r.nll == pytest.approx(nll, rel=1e-5)


def test_rolling_windows_score_every_token_once():
    from harness.models.hf import rolling_windows

    tokens = list(range(100, 171))  # 71 tokens
    for max_len, stride in [(16, 16), (16, 5), (8, 1), (80, 80)]:
        scored = []
        for inp, tgt in rolling_windows(tokens, 0, max_len, max_len - stride + 1):
            assert len(inp) <= max_len and len(tgt) <= len(inp)
            # each target is the token after its input position: inp[k+1] == tgt[k] inside the window
            full = inp + [tgt[-1]]
            assert full[-len(tgt) :] == tgt
            scored += tgt
        assert scored == tokens


def test_strided_perplexity_uses_windows_and_context_lowers_nll(smollm2):
    text = " ".join(["Fine-tuning adapts a pretrained model to a task with a small dataset."] * 6)
    [[(_, short)]] = list(smollm2.rolling_loglikelihood([text], 32, 32, 4))
    [[(_, overlap)]] = list(smollm2.rolling_loglikelihood([text], 32, 8, 4))
    [[(_, full)]] = list(smollm2.rolling_loglikelihood([text], 512, 512, 4))
    assert short.n_tokens == overlap.n_tokens == full.n_tokens > 64
    # More context per predicted token can only help on repetitive text.
    assert full.nll < overlap.nll < short.nll


def test_perplexity_suite_aggregate_is_token_weighted(tmp_path, store, smollm2):
    data = "".join(
        json.dumps({"id": f"t{i}", "text": t}) + "\n"
        for i, t in enumerate(
            [
                "A short line.",
                "A somewhat longer line of ordinary English text about the weather today.",
            ]
        )
    )
    suite = load_suite(write_suite(tmp_path / "p", "name: p\nkind: perplexity\ndata: data.jsonl\n", data))
    out = run_suite(store, smollm2, suite, RunOptions())
    rows = store.scores(out.run_id, "perplexity")
    nll = sum(d["nll"] for *_, d in rows)
    tokens = sum(d["n_tokens"] for *_, d in rows)
    _, summaries = summarize_run(store, out.run_id)
    by_name = {s.metric: s for s in summaries}
    # perplexity and the tokenizer-free extras (checked against lm-eval in tests/test_zh_perplexity.py)
    assert set(by_name) == {"perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"}
    m = by_name["perplexity"]
    assert m.summary.value == pytest.approx(math.exp(nll / tokens), rel=1e-12)
    assert not m.higher_is_better


def test_adapter_spec_has_lineage_and_its_own_fingerprint(tmp_path, store, smollm2, qa_suite):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.models import resolve_model
    from harness.models.hf import HFModel

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smollm2.resolved.weights)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    resolved = resolve_model(f"hf:{smollm2.resolved.weights}?adapter={tmp_path / 'adapter'}")
    assert resolved.fingerprint != smollm2.resolved.fingerprint
    assert resolved.base_model_id == smollm2.resolved.model_id
    out = run_suite(store, HFModel(resolved), qa_suite, RunOptions(limit=2))
    row = store.db.execute(
        "SELECT base_model_id, adapter_path FROM models WHERE model_id = ?", [resolved.model_id]
    ).fetchone()
    assert row == (smollm2.resolved.model_id, str((tmp_path / "adapter").resolve()))
    assert store.get_run(out.run_id).status == "completed"


def test_gguf_spec_is_the_same_model_as_the_alias(smollm2):
    from harness.models import resolve_model
    from harness.models.gguf import smollm2_gguf

    assert resolve_model(f"gguf:{smollm2_gguf()}").model_id == smollm2.resolved.model_id
    assert resolve_model("smollm2?dtype=bfloat16").model_id != smollm2.resolved.model_id
