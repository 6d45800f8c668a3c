"""Batched vs one-by-one generation on the same 32 prompts (target: >= 2x at batch 8).

.venv/bin/python bench/bench_generation.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import report, timed  # noqa: E402
from harness.config import GenerationParams  # noqa: E402
from harness.models import resolve_model  # noqa: E402
from harness.models.hf import HFModel  # noqa: E402


def main() -> None:
    model = HFModel(resolve_model("smollm2"))
    data = Path(__file__).resolve().parent.parent / "suites/builtin/data/finetune_qa.jsonl"
    questions = [json.loads(line)["question"] for line in data.read_text().splitlines()][:32]
    while len(questions) < 32:
        questions += questions[: 32 - len(questions)]
    prompts = [model.render_chat([{"role": "user", "content": q}]) for q in questions]
    params = GenerationParams(max_new_tokens=32)
    _ = model.model  # load weights outside the timing
    list(model.generate(prompts[:2], params, 2))  # warm-up

    def run(bs: int) -> dict[int, str]:
        return {i: g.text for batch in model.generate(prompts, params, bs) for i, g in batch}

    rows = []
    outputs = {}
    for bs in (1, 4, 8, 16):
        secs, outputs[bs] = timed(lambda bs=bs: run(bs))
        rows.append((f"batch {bs:>2} (32 prompts, 32 new tok)", secs))
    report("generation: batched vs one-by-one", rows, rows[0][0], "batch 8 >= 2x faster than batch 1")
    print(f"  speed-up at batch 8: {rows[0][1] / rows[2][1]:.2f}x")
    same = sum(outputs[1][i] == outputs[8][i] for i in range(32))
    print(f"  identical greedy outputs batch 1 vs batch 8: {same}/32")


if __name__ == "__main__":
    main()
