"""tunegate's exported requests through Ray Data LLM (vLLM engines on a Ray cluster) → outputs.

RUNS ON A RAY CLUSTER WITH GPUs, `ray[data,llm]` AND vLLM, NOT HERE: tunegate's tests do not run
it (they run the same export → outputs → import → run loop with a small transformers script,
tests/test_exchange.py). Written against the `ray.data.llm` API of Ray 2.49+
(vLLMEngineProcessorConfig, build_llm_processor); check it against your Ray version.

    tunegate requests export my-suite.yaml --model hf:/models/my-model -o requests.parquet
    python examples/scale-out/ray_data_llm.py requests.parquet outputs/ --model /models/my-model \
        --replicas 4
    tunegate outputs import outputs/*.parquet --model hf:/models/my-model --requests requests.parquet
    tunegate run --model hf:/models/my-model --suite my-suite.yaml    # 0 model calls: cache hits

Export with a local spec (hf:/…, a folder): the requests then hold the prompt rendered with the
model's own chat template, sent here as token ids exactly as tunegate tokenizes them, so no chat
template stage runs in Ray. Ray writes one Parquet file per block into the output folder;
`outputs import` takes them all at once (every file is checked before anything is stored).
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("requests", help="what `tunegate requests export` wrote (.parquet)")
    ap.add_argument("out", help="folder for the outputs (Parquet files)")
    ap.add_argument("--model", required=True, help="the weights the exported --model spec names")
    ap.add_argument("--replicas", type=int, default=1, help="vLLM engines (one GPU each by default)")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import ray
    from ray.data.llm import build_llm_processor, vLLMEngineProcessorConfig
    from transformers import AutoTokenizer

    ray.init()
    tok = AutoTokenizer.from_pretrained(args.model)
    ds = ray.data.read_parquet(args.requests)
    if ds.filter(lambda r: r["prompt"] is None).count():
        raise SystemExit("chat-message rows: export the requests with a local model spec (hf:/… or a folder)")

    config = vLLMEngineProcessorConfig(
        model_source=args.model,
        engine_kwargs={"dtype": "auto"},
        concurrency=args.replicas,
        batch_size=args.batch_size,
        apply_chat_template=False,  # the prompt is already rendered with the model's template
        tokenize=False,  # token ids below, tokenized as tunegate does (no BOS added)
        detokenize=True,
    )

    def preprocess(row: dict) -> dict:
        sampled = row["temperature"] > 0
        return {
            "cache_key": row["cache_key"],
            "prompt": row["prompt"],
            "tokenized_prompt": tok(row["prompt"], add_special_tokens=False)["input_ids"],
            "sampling_params": {
                "max_tokens": int(row["max_tokens"]),
                "temperature": float(row["temperature"]),
                "top_p": float(row["top_p"]) if sampled else 1.0,
                "seed": int(row["seed"]) if sampled else None,
                "stop": json.loads(row["stop"]) or None,  # cut again on import: harmless
            },
        }

    def postprocess(row: dict) -> dict:
        return {
            "cache_key": row["cache_key"],
            "output": row["generated_text"],
            "output_tokens": len(row.get("generated_tokens") or []),
        }

    processor = build_llm_processor(config, preprocess=preprocess, postprocess=postprocess)
    processor(ds).write_parquet(args.out)
    print(f"outputs written to {args.out}: tunegate outputs import {args.out}/*.parquet …")


if __name__ == "__main__":
    main()
