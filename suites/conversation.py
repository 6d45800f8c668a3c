"""Conversation data files as task suites: `data_format: messages | sharegpt | alpaca | auto`.

The test split of the data a model was fine-tuned on is the evaluation fine-tuners run most, in
the format they trained on. Records are read by the trainers' own readers (trainers.data, not a
second parser): the conversation before its last assistant turn (system and earlier turns
included) is the prompt, sent as chat messages; that last assistant turn is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.suite import Example, example_ids

DATA_FORMATS = ("messages", "sharegpt", "alpaca", "auto")


def split_conversation(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str] | None:
    """(prompt messages, reference) — everything before the last assistant turn, and that turn."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None or not any(m["role"] == "user" for m in messages[:last]):
        return None
    return [dict(m) for m in messages[:last]], messages[last]["content"]


def conversation_examples(
    path: Path, data_format: str, id_field: str | None, system_prompt: str | None = None
) -> tuple[list[Example], dict[str, tuple[dict[str, str], ...]]]:
    """Examples (reference = last assistant turn) and each example's prompt messages."""
    from trainers.data import read_data

    data = read_data(path, None if data_format == "auto" else data_format)
    if data.bad:
        line, why = data.bad[0]
        raise UserError(why, path=path, line=line)
    if data.format == "dpo":
        raise UserError(
            "preference pairs (prompt/chosen/rejected) are not a conversation: use messages, "
            "sharegpt or alpaca data",
            path=path,
            line=data.examples[0].line if data.examples else None,
            field="data_format",
        )
    rows = [(e.line, e.raw) for e in data.examples]
    ids = example_ids(rows, id_field, path)
    examples, prompts = [], {}
    for eid, ex in zip(ids, data.examples):
        split = split_conversation(ex.messages)
        if split is None:
            raise UserError(
                "the conversation has no assistant turn after a user turn to use as the reference",
                path=path,
                line=ex.line,
            )
        msgs, reference = split
        if system_prompt and not any(m["role"] == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": system_prompt})
        record: dict[str, Any] = dict(ex.raw)
        examples.append(Example(eid, record, [reference], ex.line))
        prompts[eid] = tuple(msgs)
    return examples, prompts
