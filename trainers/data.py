"""Training data: Alpaca, ShareGPT, chat `messages` and DPO pairs, read into one canonical shape.

Every record keeps its file line so every complaint can point at it. Records that cannot be
read are collected as `bad` rather than raised one at a time: `data check` lists them all,
training refuses the file on the first.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.textfile import read_utf8

Message = dict[str, str]
SFT_FORMATS = ("alpaca", "sharegpt", "messages")
FORMATS = (*SFT_FORMATS, "dpo")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
SOURCE_KEYS = {
    "alpaca": {"instruction", "input", "output", "system"},
    "sharegpt": {"conversations"},
    "messages": {"messages"},
    "dpo": {"prompt", "chosen", "rejected"},
}
FORMAT_HELP = (
    "alpaca (instruction/input/output), sharegpt (conversations of from/value), "
    "messages (messages of role/content), dpo (prompt/chosen/rejected)"
)


class BadRecord(ValueError):
    """A record that does not fit its format; the message says which field and why."""


@dataclass(frozen=True)
class Example:
    """One record in canonical chat form. SFT: `messages` is the conversation; DPO: the prompt."""

    line: int
    raw: dict[str, Any]
    messages: list[Message]
    chosen: list[Message] | None = None
    rejected: list[Message] | None = None
    empty: tuple[str, ...] = ()
    """Source fields that are present but empty (named as the user wrote them)."""

    @property
    def usable(self) -> bool:
        if self.chosen is not None:
            return bool(_text(self.messages) and _text(self.chosen) and _text(self.rejected or []))
        turns = self.messages
        return any(m["role"] == "assistant" and m["content"].strip() for m in turns) and any(
            m["role"] == "user" and m["content"].strip() for m in turns
        )


@dataclass(frozen=True)
class TrainingData:
    path: Path
    format: str
    examples: list[Example]
    bad: list[tuple[int, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "dpo" if self.format == "dpo" else "sft"

    def usable(self) -> list[Example]:
        return [e for e in self.examples if e.usable]


def read_data(path: Path, fmt: str | None = None) -> TrainingData:
    """Read a .jsonl (or .json array) file; the format is detected from the first record."""
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown data format '{fmt}' (known: {FORMAT_HELP})", field="format")
    records, bad = _read_records(path)
    if fmt is None:
        first = next(((line, r) for line, r in records if isinstance(r, dict)), None)
        if first is None:
            raise UserError("no JSON object records to read", path=path, line=bad[0][0] if bad else None)
        fmt = detect_format(first[1], path, first[0])
    examples = []
    for line, rec in records:
        try:
            examples.append(parse_record(rec, fmt, line))
        except BadRecord as e:
            bad.append((line, str(e)))
    return TrainingData(path, fmt, examples, sorted(bad))


def detect_format(rec: dict[str, Any], path: Path, line: int) -> str:
    if "conversations" in rec:
        return "sharegpt"
    if "messages" in rec:
        return "messages"
    if "chosen" in rec and "rejected" in rec:
        return "dpo"
    if "instruction" in rec and "output" in rec:
        return "alpaca"
    raise UserError(
        f"unknown data format: record keys {sorted(rec)[:8]}; expected one of {FORMAT_HELP}",
        path=path,
        line=line,
    )


def parse_record(rec: Any, fmt: str, line: int) -> Example:
    if not isinstance(rec, dict):
        raise BadRecord(f"expected a JSON object, got {type(rec).__name__}")
    if fmt == "alpaca":
        for key in ("instruction", "output"):
            if not isinstance(rec.get(key), str):
                raise BadRecord(f"field '{key}' must be a string")
        extra = rec.get("input") or ""
        if not isinstance(extra, str):
            raise BadRecord("field 'input' must be a string")
        user = rec["instruction"] + (f"\n\n{extra}" if extra.strip() else "")
        msgs = _system(rec) + [_msg("user", user), _msg("assistant", rec["output"])]
        empty = tuple(k for k in ("instruction", "output") if not rec[k].strip())
        return Example(line, rec, msgs, empty=empty)
    if fmt == "sharegpt":
        turns = _list_of_dicts(rec, "conversations", ("from", "value"))
        msgs = []
        for i, t in enumerate(turns):
            role = _SHAREGPT_ROLES.get(str(t["from"]).lower())
            if role is None:
                raise BadRecord(f"conversations[{i}].from '{t['from']}' is not one of human, gpt, system")
            msgs.append(_msg(role, t["value"]))
        return Example(line, rec, msgs, empty=_empty_turns(msgs, "conversations"))
    if fmt == "messages":
        msgs = [_msg(t["role"], t["content"]) for t in _list_of_dicts(rec, "messages", ("role", "content"))]
        return Example(line, rec, msgs, empty=_empty_turns(msgs, "messages"))
    prompt = _turns(rec, "prompt", "user")
    chosen, rejected = _turns(rec, "chosen", "assistant"), _turns(rec, "rejected", "assistant")
    empty = tuple(
        k for k, v in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)) if not _text(v)
    )
    return Example(line, rec, prompt, chosen, rejected, empty)


def sft_conversations(data: TrainingData) -> list[list[Message]]:
    """Usable conversations: SFT as written, DPO pairs as prompt + chosen."""
    return [e.messages + (e.chosen or []) for e in data.usable()]


def normalize(text: str) -> str:
    """Casefolded letters and digits only, single-spaced: what near-duplicate checks compare."""
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c if c.isalnum() else " " for c in text)
    return " ".join(kept.split())


def files_hash(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of the data files, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


# -- helpers ------------------------------------------------------------------------------
def _read_records(path: Path) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    try:
        text = read_utf8(path)  # invalid UTF-8: an error naming the line
    except FileNotFoundError:
        raise UserError("data file not found", path=path) from None
    except OSError as e:
        raise UserError(f"cannot read data file: {e}", path=path) from None
    if path.suffix == ".json" or text.lstrip().startswith("["):
        return _read_json_array(text, path)
    records, bad = [], []
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            records.append((i, json.loads(raw)))
        except ValueError as e:
            bad.append((i, f"invalid JSON: {e}"))
    return records, bad


def _read_json_array(text: str, path: Path) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"invalid JSON: {e.msg}", path=path, line=getattr(e, "lineno", None)) from None
    if not isinstance(items, list):
        raise UserError("a .json data file must hold a list of records", path=path, line=1)
    # Line of each element, so complaints point into the file like they do for JSONL.
    decoder, pos, lines = json.JSONDecoder(), text.index("[") + 1, []
    for _ in items:
        while text[pos] in " \t\r\n,":
            pos += 1
        lines.append(text.count("\n", 0, pos) + 1)
        pos = decoder.raw_decode(text, pos)[1]
    return list(zip(lines, items)), []


def _msg(role: Any, content: Any) -> Message:
    if role not in ("system", "user", "assistant"):
        raise BadRecord(f"role '{role}' is not one of system, user, assistant")
    if not isinstance(content, str):
        raise BadRecord(f"{role} content must be a string, got {type(content).__name__}")
    return {"role": role, "content": content}


def _system(rec: dict[str, Any]) -> list[Message]:
    return [_msg("system", rec["system"])] if rec.get("system") else []


def _list_of_dicts(rec: dict[str, Any], key: str, need: tuple[str, str]) -> list[dict[str, Any]]:
    turns = rec.get(key)
    if not isinstance(turns, list) or not turns:
        raise BadRecord(f"field '{key}' must be a non-empty list")
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or any(k not in t for k in need):
            raise BadRecord(f"{key}[{i}] must be an object with '{need[0]}' and '{need[1]}'")
    return turns


def _turns(rec: dict[str, Any], key: str, role: str) -> list[Message]:
    v = rec.get(key)
    if isinstance(v, str):
        return [_msg(role, v)]
    if isinstance(v, list) and v and all(isinstance(t, dict) for t in v):
        return [_msg(t.get("role"), t.get("content")) for t in v]
    raise BadRecord(f"field '{key}' must be a string or a list of role/content messages")


def _empty_turns(msgs: list[Message], key: str) -> tuple[str, ...]:
    return tuple(sorted({f"{key} ({m['role']})" for m in msgs if not m["content"].strip()}))


def _text(msgs: list[Message]) -> str:
    return "".join(m["content"] for m in msgs).strip()
