"""`tunegate data check`: the quality report people should read before spending GPU hours.

Numbers, not opinions: counts with the file lines behind them, token lengths measured with
the tokenizer the model will train with, and warnings only where a threshold is crossed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainers.data import Example, TrainingData, normalize, read_data
from trainers.text_checks import near_duplicate_groups, script_counts

# Han ideographs and kana (scripts without spaces between words).
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Lengths:
    """Token-length distribution (min/median/p95/max) over n texts."""

    n: int
    min: int
    median: float
    p95: float
    max: int

    @staticmethod
    def of(values: list[int]) -> Lengths:
        if not values:
            return Lengths(0, 0, 0.0, 0.0, 0)
        a = np.array(values)
        return Lengths(len(a), int(a.min()), float(np.median(a)), float(np.percentile(a, 95)), int(a.max()))


@dataclass
class DataReport:
    path: str
    format: str
    records: int
    usable: int
    bad_lines: list[tuple[int, str]]
    empty_fields: dict[str, list[int]]
    """Field name → lines where it is present but empty."""
    output_equals_instruction: list[int]
    exact_duplicates: list[list[int]]
    """Groups of lines holding identical records (each group lists every copy)."""
    near_duplicates: list[list[int]]
    """Groups not exactly identical whose character 3-grams overlap (Jaccard >= 0.8, any
    language; this includes texts identical after normalising case, punctuation, spacing)."""
    chosen_equals_rejected: list[int]
    output_tokens: Lengths
    total_tokens: Lengths
    """Whole chat-templated record, as the trainer will see it."""
    output_chars: Lengths
    """Output lengths in characters (whitespace words mean nothing in Chinese)."""
    scripts: dict[str, int]
    """Records written in simplified / traditional Chinese (by their script-specific characters)."""
    mixed_script: list[int]
    """Lines whose text mixes simplified-only and traditional-only characters."""
    short_outputs: list[int]
    long_records: list[int]
    first_words: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Bad input: unreadable lines or nothing to train on (exit 2)."""
        return bool(self.bad_lines) or self.usable == 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


def check_file(
    path: Path, tokenizer: Any, *, fmt: str | None = None, min_output_tokens: int = 2, max_length: int = 1024
) -> DataReport:
    """Read `path` and measure it. `tokenizer` is a transformers tokenizer with a chat template."""
    data = read_data(path, fmt)
    return check_data(data, tokenizer, min_output_tokens=min_output_tokens, max_length=max_length)


def check_data(data: TrainingData, tokenizer: Any, *, min_output_tokens: int, max_length: int) -> DataReport:
    exs = data.examples
    empty: dict[str, list[int]] = {}
    for ex in exs:
        for name in ex.empty:
            empty.setdefault(name, []).append(ex.line)
    outputs = [(ex.line, text) for ex in exs for text in _outputs(ex)]
    out_tokens = [(line, _n_tokens(tokenizer, text)) for line, text in outputs]
    totals = [(ex.line, n) for ex in exs for n in _templated_lengths(tokenizer, ex)]
    report = DataReport(
        path=str(data.path),
        format=data.format,
        records=len(exs) + len(data.bad),
        usable=len(data.usable()),
        bad_lines=data.bad,
        empty_fields=empty,
        output_equals_instruction=[ex.line for ex in exs if _echoes(ex)],
        exact_duplicates=_groups(exs, lambda ex: repr(ex.messages + (ex.chosen or []) + (ex.rejected or []))),
        near_duplicates=[],
        chosen_equals_rejected=[
            ex.line for ex in exs if ex.chosen is not None and _strip(ex.chosen) == _strip(ex.rejected)
        ],
        output_tokens=Lengths.of([n for _, n in out_tokens]),
        total_tokens=Lengths.of([n for _, n in totals]),
        output_chars=Lengths.of([len(text) for _, text in outputs]),
        scripts={},
        mixed_script=[],
        short_outputs=sorted({line for line, n in out_tokens if 0 < n < min_output_tokens}),
        long_records=sorted({line for line, n in totals if n > max_length}),
        first_words=_first_words([text for _, text in outputs if _first_word(text)]),
    )
    exact = {line for g in report.exact_duplicates for line in g}
    texts = [" ".join(m["content"] for m in _all(ex)) for ex in exs]
    near = near_duplicate_groups(texts, [ex.line for ex in exs])
    report.near_duplicates = [g for g in near if not set(g) <= exact]
    report.scripts, report.mixed_script = _scripts(texts, [ex.line for ex in exs])
    report.warnings = _warnings(report, min_output_tokens, max_length)
    return report


def _warnings(r: DataReport, min_output_tokens: int, max_length: int) -> list[str]:
    w = []
    if r.usable == 0:
        w.append("no usable records: every record lacks a user prompt or a reply")
    for name, lines in sorted(r.empty_fields.items()):
        w.append(f"{len(lines)} record(s) with empty {name}: lines {_lines(lines)}")
    if r.output_equals_instruction:
        w.append(
            f"{len(r.output_equals_instruction)} output(s) repeat the instruction: "
            f"lines {_lines(r.output_equals_instruction)}"
        )
    if r.exact_duplicates:
        extra = sum(len(g) - 1 for g in r.exact_duplicates)
        w.append(
            f"{extra} exact duplicate(s) in {len(r.exact_duplicates)} group(s): "
            + "; ".join(_lines(g) for g in r.exact_duplicates[:5])
        )
    if r.near_duplicates:
        w.append(
            f"{len(r.near_duplicates)} group(s) of near-duplicates (same text after normalising): "
            + "; ".join(_lines(g) for g in r.near_duplicates[:5])
        )
    if r.mixed_script:
        w.append(
            f"{len(r.mixed_script)} record(s) mix traditional and simplified Chinese characters: "
            f"lines {_lines(r.mixed_script)}"
        )
    if len(r.scripts) == 2:
        w.append(
            f"the file mixes scripts: {r.scripts['simplified']} simplified and "
            f"{r.scripts['traditional']} traditional Chinese record(s) (convert with OpenCC to one)"
        )
    if r.chosen_equals_rejected:
        w.append(
            f"{len(r.chosen_equals_rejected)} pair(s) with chosen == rejected (no preference signal): "
            f"lines {_lines(r.chosen_equals_rejected)}"
        )
    if r.short_outputs:
        w.append(
            f"{len(r.short_outputs)} record(s) with an output under {min_output_tokens} tokens: "
            f"lines {_lines(r.short_outputs)}"
        )
    if r.long_records:
        w.append(
            f"{len(r.long_records)} record(s) over {max_length} tokens will be truncated: "
            f"lines {_lines(r.long_records)}"
        )
    fw = r.first_words
    if fw["n"] >= 10 and fw["top"] and fw["top"][0][1] / fw["n"] > 0.5:
        word, count = fw["top"][0]
        w.append(f"low first-word diversity: {count}/{fw['n']} outputs start with '{word}'")
    return w


def _outputs(ex: Example) -> list[str]:
    if ex.chosen is not None:
        return [_join(ex.chosen), _join(ex.rejected or [])]
    return [m["content"] for m in ex.messages if m["role"] == "assistant"]


def _templated_lengths(tokenizer: Any, ex: Example) -> list[int]:
    convs = [ex.messages + ex.chosen, ex.messages + (ex.rejected or [])] if ex.chosen else [ex.messages]
    if not tokenizer.chat_template:
        return [_n_tokens(tokenizer, "\n".join(m["content"] for m in c)) for c in convs]
    return [
        len(tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]) for c in convs
    ]


def _n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _echoes(ex: Example) -> bool:
    """A reply that only repeats the user turn before it."""
    msgs = ex.messages + (ex.chosen or [])
    return any(
        a["role"] == "user"
        and b["role"] == "assistant"
        and a["content"].strip() == b["content"].strip() != ""
        for a, b in zip(msgs, msgs[1:])
    )


def _groups(exs: list[Example], key: Callable[[Example], str]) -> list[list[int]]:
    by: dict[str, list[int]] = {}
    for ex in exs:
        by.setdefault(key(ex), []).append(ex.line)
    return [lines for lines in by.values() if len(lines) > 1]


def _first_words(texts: list[str]) -> dict[str, Any]:
    words = Counter(_first_word(t) for t in texts)
    n = sum(words.values())
    return {
        "n": n,
        "distinct": len(words),
        "ratio": len(words) / n if n else 0.0,
        "top": words.most_common(5),
    }


def _first_word(text: str) -> str:
    parts = normalize(text).split()
    if not parts:
        return ""
    first = parts[0]
    # Chinese has no spaces: the "first word" would be the whole first clause. Two characters
    # stand in for a word (您好, 可以, 我们), enough to see a templated opening.
    return first[:2] if _CJK.match(first) else first


def _scripts(texts: list[str], lines: list[int]) -> tuple[dict[str, int], list[int]]:
    """Records per Chinese script, and the lines that mix both scripts' own characters."""
    scripts: Counter[str] = Counter()
    mixed = []
    for text, line in zip(texts, lines):
        if not _CJK.search(text):
            continue
        simp, trad = script_counts(text)
        if simp and trad:
            mixed.append(line)
        elif simp or trad:
            scripts["simplified" if simp else "traditional"] += 1
    return dict(scripts), mixed


def _all(ex: Example) -> list[dict[str, str]]:
    return ex.messages + (ex.chosen or []) + (ex.rejected or [])


def _join(msgs: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in msgs)


def _strip(msgs: list[dict[str, str]] | None) -> list[str]:
    return [m["content"].strip() for m in msgs or []]


def _lines(lines: list[int], k: int = 10) -> str:
    shown = ", ".join(map(str, lines[:k]))
    return shown + (f" … (+{len(lines) - k})" if len(lines) > k else "")
