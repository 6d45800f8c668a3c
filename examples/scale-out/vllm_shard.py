"""One shard of exported tunegate requests through vLLM's offline engine → an outputs file.

RUNS ON A CLUSTER NODE WITH vLLM, NOT IN tunegate's TEST SUITE: it is the worker that
`slurm_array.sbatch` starts once per array task (it is not run or tested here). Input: the file
`tunegate requests export … -o requests.parquet` wrote; output: cache_key, output, prompt_tokens,
output_tokens for `tunegate outputs import … --requests requests.parquet`.

    python vllm_shard.py requests.parquet outputs/shard-3.parquet --model /models/my-model \
        --shard 3 --shards 16 [--tensor-parallel-size 1] [--dtype auto]

Rows are taken by position (row k goes to shard k mod N), so the shards cover every request once.
`prompt` rows are token ids exactly as tunegate tokenizes them (no BOS added: the rendered chat
template carries its own special tokens); `messages` rows (exported for an endpoint spec) go
through `LLM.chat`, which applies the model's chat template as a vLLM server would.
"""

from __future__ import annotations

import argparse
import json

import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("requests")
    ap.add_argument("out")
    ap.add_argument("--model", required=True, help="the weights the exported --model spec names")
    ap.add_argument("--shard", type=int, required=True)
    ap.add_argument("--shards", type=int, required=True)
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    from vllm import LLM, SamplingParams

    rows = pq.read_table(args.requests).to_pylist()[args.shard :: args.shards]
    llm = LLM(model=args.model, dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size)
    tok = llm.get_tokenizer()

    def sampling(r: dict) -> SamplingParams:
        sampled = r["temperature"] > 0
        return SamplingParams(
            max_tokens=r["max_tokens"],
            temperature=r["temperature"],
            top_p=r["top_p"] if sampled else 1.0,
            seed=r["seed"] if sampled else None,
            stop=json.loads(r["stop"]) or None,  # tunegate cuts at the stops again on import
        )

    out = []
    text_rows = [r for r in rows if r["prompt"] is not None]
    chat_rows = [r for r in rows if r["messages"] is not None]
    if text_rows:
        prompts = [
            {"prompt_token_ids": tok(r["prompt"], add_special_tokens=False)["input_ids"]} for r in text_rows
        ]
        results = llm.generate(prompts, [sampling(r) for r in text_rows])
        out += zip(text_rows, results)
    if chat_rows:
        results = llm.chat([json.loads(r["messages"]) for r in chat_rows], [sampling(r) for r in chat_rows])
        out += zip(chat_rows, results)
    table = pa.Table.from_pylist(
        [
            {
                "cache_key": r["cache_key"],
                "output": res.outputs[0].text,
                "prompt_tokens": len(res.prompt_token_ids or []),
                "output_tokens": len(res.outputs[0].token_ids),
            }
            for r, res in out
        ]
    )
    pq.write_table(table, args.out)
    print(f"shard {args.shard}/{args.shards}: {len(out)} outputs -> {args.out}")


if __name__ == "__main__":
    main()
