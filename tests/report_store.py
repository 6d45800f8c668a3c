"""Stores for report tests and the report benchmark, written through the Store API as runs are.

Two models (a base and a DPO candidate trained from an SFT candidate, so the lineage has three
links), a task suite with hostile and Chinese outputs, training logs with losses and reward
margins. Nothing here is a mock: these are the rows the runner and trainers write.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from harness.store import GenerationRow, ScoreRow, Store
from harness.store.training import finish_training_run, log_training_step, start_training_run

XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_CLOSE = "</script><script>window.__xss=1</script><!--"
CHINESE = "微调后的模型回答：北京是中华人民共和国的首都。"
TEMPLATE = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)
WORDS = (
    "the model answers a short question about fine tuning with low rank adapters and a learning rate "
    "schedule while the reference names the exact concept in as few words as possible"
).split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_store(path: Path, n: int = 40, *, words: int = 24, hostile: bool = True) -> Path:
    """A store with base and candidate runs of suite 'qa' (n examples) and, if hostile, 'zh'."""
    rng = random.Random(7)
    with Store(path) as s:
        s.upsert_model("m-base", "base-model", "hf", "b" * 64)
        s.upsert_model("m-sft", "base-model?adapter=out/sft", "hf", "s" * 64, base_model_id="m-base",
                       adapter_path="out/sft")  # fmt: skip
        s.upsert_model("m-cand", "base-model?adapter=out/dpo", "hf", "c" * 64, base_model_id="m-base",
                       adapter_path="out/dpo")  # fmt: skip
        _training(s)
        qa = [(f"q{i}", {"question": f"question {i}: {_text(rng, 8)}"}, [_text(rng, 4)]) for i in range(n)]
        if hostile:
            qa[1] = ("q1", {"question": XSS_SCRIPT}, [XSS_IMG])
        s.upsert_suite("qa-1", "qa", "task", "h1", "qa.yaml", {}, qa)
        metrics = [("token_f1", {}, "mean", True, False), ("exact_match", {}, "mean", True, True)]
        for side, model in (("base", "m-base"), ("cand", "m-cand")):
            outs = {}
            for i, (eid, _rec, _ref) in enumerate(qa):
                out = _text(rng, words)
                if hostile and i == 1:
                    out = (XSS_IMG if side == "base" else XSS_SCRIPT) + " " + XSS_CLOSE
                outs[eid] = out
            _run(
                s,
                f"r-qa-{side}",
                model,
                "qa-1",
                qa,
                outs,
                metrics,
                rng,
                side,
                error_ids={"q3"} if side == "cand" else set(),
            )
        if hostile:
            zh = [
                ("z0", {"question": "中国的首都是哪里？"}, ["北京"]),
                ("z1", {"question": "一加一等于几？"}, ["二"]),
            ]
            s.upsert_suite("zh-1", "zh", "task", "h2", "zh.yaml", {}, zh)
            for side, model in (("base", "m-base"), ("cand", "m-cand")):
                outs = {"z0": CHINESE if side == "cand" else "首都是上海。", "z1": "二"}
                _run(s, f"r-zh-{side}", model, "zh-1", zh, outs, metrics, rng, side)
    return path


def _run(s, run_id, model, suite_id, examples, outs, metrics, rng, side, error_ids=frozenset()) -> None:
    s.create_run(run_id, model, suite_id, config={"limit": None}, seed=0,
                 versions={"tunegate": "0.1.0", "torch": "2.13.0"}, git_sha="abc1234def", host="ci-box",
                 n_examples=len(examples), metrics=metrics)  # fmt: skip
    gens, items, scores = [], [], []
    for i, (eid, rec, ref) in enumerate(examples):
        key = hashlib.sha256(f"{model}{eid}".encode()).hexdigest()
        prompt = f"{TEMPLATE}<|im_start|>user\nAnswer briefly.\nQuestion: {rec['question']}<|im_end|>\n"
        err = "RuntimeError: CUDA out of memory <b>boom</b>" if eid in error_ids else None
        out = None if err else outs[eid]
        gens.append(GenerationRow(key, model, "generate", prompt, {"max_new_tokens": 24}, out, error=err))
        items.append((eid, key, False, err))
        if err:
            scores += [ScoreRow(eid, m[0], None, 1.0, err) for m in metrics]
            continue
        shift = 0.08 if side == "cand" else 0.0
        f1 = min(1.0, max(0.0, rng.random() * 0.8 + shift))
        if out == ref[0] or (eid == "z0" and side == "cand"):
            f1 = 1.0
        detail = {"rationale": f"judge says: <i>{side}</i> answer {eid} is {'fine' if f1 > 0.5 else 'weak'}"}
        scores.append(ScoreRow(eid, "token_f1", round(f1, 4), 1.0, None, detail if i % 7 == 0 else None))
        # the same detail on both metrics, as a rubric judge stores one rationale for all criteria
        scores.append(
            ScoreRow(eid, "exact_match", float(f1 > 0.7), 1.0, None, detail if i % 7 == 0 else None)
        )
    if len(items) <= 1000:
        s.write_batch(run_id, gens, items, scores)
    else:
        _bulk(s, run_id, gens, items, scores)
    s.mark_run(run_id, "completed")


def _bulk(s, run_id, gens, items, scores) -> None:
    """The rows write_batch would write, inserted column-wise (DuckDB's executemany does ~200 rows/s)."""
    import json

    import pyarrow as pa

    j = lambda v: None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)  # noqa: E731
    tables = {
        "generations": pa.table({
            "cache_key": [g.cache_key for g in gens], "model_id": [g.model_id for g in gens],
            "request_type": [g.request_type for g in gens], "prompt": [g.prompt for g in gens],
            "params": [j(g.params) for g in gens], "output": [g.output for g in gens],
            "result": [j(g.result) for g in gens], "prompt_tokens": pa.array([None] * len(gens), pa.int32()),
            "output_tokens": pa.array([None] * len(gens), pa.int32()),
            "latency_s": pa.array([None] * len(gens), pa.float64()), "error": [g.error for g in gens],
        }),
        "run_examples": pa.table({
            "run_id": [run_id] * len(items), "example_id": [i[0] for i in items],
            "cache_key": [i[1] for i in items], "cached": [i[2] for i in items],
            "error": [i[3] for i in items],
        }),
        "scores": pa.table({
            "run_id": [run_id] * len(scores), "example_id": [x.example_id for x in scores],
            "metric": [x.metric for x in scores], "value": pa.array([x.value for x in scores], pa.float64()),
            "weight": [x.weight for x in scores], "error": pa.array([x.error for x in scores], pa.string()),
            "detail": pa.array([j(x.detail) for x in scores], pa.string()),
        }),
    }  # fmt: skip
    with s.transaction():
        for name, table in tables.items():
            s.db.register("_rows", table)
            s.db.execute(f"INSERT INTO {name} ({', '.join(table.column_names)}) SELECT * FROM _rows")
            s.db.unregister("_rows")


def _training(s) -> None:
    for tid, kind, parent, cand, cfg in (
        ("t-sft", "sft", "m-base", "m-sft", {"lora": {"r": 8, "alpha": 16},
                                             "quantization": {"load_in_4bit": True},
                                             "training": {"learning_rate": 2e-4, "max_steps": 30}}),
        ("t-dpo", "dpo", "m-sft", "m-cand", {"lora": {"r": 8, "alpha": 16}, "beta": 0.1,
                                             "training": {"learning_rate": 5e-6, "max_steps": 20}}),
    ):  # fmt: skip
        start_training_run(s, tid, kind=kind, name=f"{kind}-demo", parent_model_id=parent, config=cfg,
                           dataset_hash="d" * 64, dataset={"train": 100}, seed=42, versions={}, git_sha=None,
                           host="ci-box")  # fmt: skip
        seq = 0
        for step in range(1, 21):
            logs = {"loss": 2.5 / (1 + 0.1 * step), "learning_rate": 1e-4, "epoch": step / 20}
            if kind == "dpo":
                logs |= {"rewards/margins": 0.05 * step, "rewards/accuracies": min(1.0, 0.5 + 0.03 * step)}
            log_training_step(s, tid, seq, logs, step)
            seq += 1
            if step % 5 == 0:
                ev = {"eval_loss": 2.6 / (1 + 0.08 * step), "epoch": step / 20}
                if kind == "dpo":
                    ev |= {"eval_rewards/margins": 0.04 * step, "eval_rewards/accuracies": 0.5 + 0.02 * step}
                log_training_step(s, tid, seq, ev, step)
                seq += 1
        finish_training_run(s, tid, "completed", summary={"steps": 20}, candidate_model_id=cand,
                            adapter_path=f"out/{kind}")  # fmt: skip
