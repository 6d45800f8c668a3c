"""`data convert` and `data split`: rewrite records in another format; seeded, leak-free splits."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import UserError
from trainers.data import SOURCE_KEYS, BadRecord, Example, TrainingData, normalize


def to_format(ex: Example, source: str, fmt: str) -> dict[str, Any]:
    """The record in format `fmt`; keys that `source` does not own (ids, tags) are carried over."""
    carried = {k: v for k, v in ex.raw.items() if k not in SOURCE_KEYS[source]}
    if fmt == "dpo":
        if ex.chosen is None:
            raise BadRecord("SFT records have no rejected response: cannot convert to dpo")
        return {**carried, "prompt": ex.messages, "chosen": ex.chosen, "rejected": ex.rejected}
    # DPO pairs become SFT data on their chosen responses.
    msgs = ex.messages + (ex.chosen or [])
    if fmt == "messages":
        return {**carried, "messages": msgs}
    if fmt == "sharegpt":
        names = {"user": "human", "assistant": "gpt", "system": "system"}
        return {**carried, "conversations": [{"from": names[m["role"]], "value": m["content"]} for m in msgs]}
    system = [m["content"] for m in msgs if m["role"] == "system"]
    turns = [m for m in msgs if m["role"] != "system"]
    if [m["role"] for m in turns] != ["user", "assistant"] or len(system) > 1:
        raise BadRecord("alpaca holds one instruction and one output; this conversation has more turns")
    out = {**carried, "instruction": turns[0]["content"], "input": "", "output": turns[1]["content"]}
    return {**out, "system": system[0]} if system else out


def convert(data: TrainingData, fmt: str) -> list[dict[str, Any]]:
    """Every record in `fmt`; the first record that cannot be converted is a user error."""
    if data.bad:
        line, why = data.bad[0]
        raise UserError(why, path=data.path, line=line)
    out = []
    for ex in data.examples:
        try:
            out.append(to_format(ex, data.format, fmt))
        except BadRecord as e:
            raise UserError(str(e), path=data.path, line=ex.line) from None
    return out


def split(data: TrainingData, val: float, test: float, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Raw records shuffled with `seed` into train/val/test.

    Records with the same normalised text stay together, so a near-duplicate can never sit in
    train and in test at once (the split would then measure memorisation).
    """
    if val < 0 or test < 0 or val + test >= 1:
        raise UserError("--val and --test must be >= 0 and leave some data for train")
    if data.bad:
        line, why = data.bad[0]
        raise UserError(why, path=data.path, line=line)
    groups: dict[str, list[Example]] = {}
    for ex in data.examples:
        key = normalize(" ".join(m["content"] for m in ex.messages + (ex.chosen or [])))
        groups.setdefault(key, []).append(ex)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    n = len(data.examples)
    want = {"test": round(n * test), "val": round(n * val)}
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for group in order:
        name = next((s for s in ("test", "val") if len(out[s]) < want[s]), "train")
        out[name].extend(ex.raw for ex in group)
    return out


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n
