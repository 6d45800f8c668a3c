"""Reference-free format checks: valid JSON, JSON matching a schema, output matching a regex.

These judge the model output alone. An output in the wrong format is the model's failure and
scores 0 (with the reason in `detail`); only bad configuration is an error, raised at build.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, best_match
from referencing.exceptions import Unresolvable

from harness.errors import UserError
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer

# A fenced block, with or without a language tag (```json, ```JSON, ```).
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)```", re.DOTALL)
_OPENERS = re.compile(r"[{\[]")
# Each failed raw_decode can read to the end of the text, so trying every '{'/'[' is
# quadratic (seconds on a 100 kB run of "[[[["). Real outputs put their JSON within the
# first few candidates; past this many we give up and score 0.
MAX_CANDIDATES = 256


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity, which strict JSON parsers reject; so do we.
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclass(frozen=True)
class Parsed:
    """Outcome of looking for JSON in a model output."""

    ok: bool
    value: Any = None
    source: str | None = None
    """Where the JSON was found: "whole", "fence" or "embedded"."""
    error: str | None = None


def _loads(text: str) -> Any:
    value, end = _DECODER.raw_decode(text)
    if text[end:].strip():
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _describe(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    if isinstance(e, RecursionError):
        return "JSON nested too deeply"
    return str(e)


Extract = bool | Literal["fence"]


def parse_json(text: str, *, extract: Extract) -> Parsed:
    """Parse `text` as JSON; `extract=True` also looks inside code fences and prose,
    `extract="fence"` only inside a fenced code block (the whole output is not taken)."""
    if extract == "fence":
        errors = []
        for m in _FENCE.finditer(text):
            try:
                return Parsed(True, _loads(m.group(1).strip()), "fence")
            except (ValueError, RecursionError) as e:
                errors.append(_describe(e))
        why = f"the fenced block is not JSON ({errors[0]})" if errors else "no ``` fenced block in the output"
        return Parsed(False, error=why)
    stripped = text.strip()
    try:
        return Parsed(True, _loads(stripped), "whole")
    except (ValueError, RecursionError) as e:
        whole_error = _describe(e)
    if not extract:
        return Parsed(False, error=whole_error)
    # A fence is the model's explicit statement of where the JSON is; prefer it to braces
    # that may appear in surrounding prose.
    for m in _FENCE.finditer(text):
        try:
            return Parsed(True, _loads(m.group(1).strip()), "fence")
        except (ValueError, RecursionError):
            pass
    for i, m in enumerate(_OPENERS.finditer(text)):
        if i == MAX_CANDIDATES:
            return Parsed(False, error=f"no JSON found in the first {MAX_CANDIDATES} '{{'/'[' positions")
        try:
            value, _ = _DECODER.raw_decode(text, m.start())
            return Parsed(True, value, "embedded")
        except (ValueError, RecursionError):
            pass
    return Parsed(False, error=f"no JSON object or array found ({whole_error})")


@METRICS.register("json_valid", higher_is_better=True, aggregation="mean", binary=True)
def json_valid(*, extract: Extract = True) -> Scorer:
    """1 if the output is valid JSON (with extract: also in a ``` fence or prose; fence: only there)."""
    # NaN / Infinity are rejected: RFC 8259 JSON has no such values (Python's json accepts them).

    def score(prediction: str, example: ExampleView) -> MetricResult:
        parsed = parse_json(prediction, extract=extract)
        if not parsed.ok:
            return MetricResult(value=0.0, detail={"parse_error": parsed.error})
        return MetricResult(value=1.0, detail={"source": parsed.source})

    return score


@METRICS.register("json_schema", higher_is_better=True, aggregation="mean", binary=True)
def json_schema(*, schema: dict[str, Any], extract: Extract = True) -> Scorer:
    """1 if the (extracted) JSON output validates against `schema` (default draft 2020-12)."""
    # Honour an explicit "$schema" draft, as jsonschema.validate does; 2020-12 otherwise.
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        path = "/".join(str(p) for p in e.path)
        where = f" at '{path}'" if path else ""
        raise UserError(f"invalid JSON schema{where}: {e.message}", field="schema") from None
    validator = cls(schema)

    def score(prediction: str, example: ExampleView) -> MetricResult:
        parsed = parse_json(prediction, extract=extract)
        if not parsed.ok:
            return MetricResult(value=0.0, detail={"parse_error": parsed.error})
        try:
            # best_match picks the most relevant error (deepest, least ambiguous), which is
            # what a reader wants to see; plain iteration order follows schema keyword order.
            err = best_match(validator.iter_errors(parsed.value))
        except Unresolvable as e:
            # A $ref we cannot follow (e.g. a remote URL) is a config problem, not a 0.
            return MetricResult(error=f"schema reference cannot be resolved: {e}")
        if err is None:
            return MetricResult(value=1.0, detail={"source": parsed.source})
        return MetricResult(
            value=0.0,
            detail={
                "validation_error": err.message,
                "path": "/".join(str(p) for p in err.absolute_path),
            },
        )

    return score


@METRICS.register("regex_match", higher_is_better=True, aggregation="mean", binary=True)
def regex_match(*, pattern: str, fullmatch: bool = False, ignore_case: bool = False) -> Scorer:
    """1 if `pattern` matches the stripped output (re.search, or re.fullmatch with fullmatch)."""
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as e:
        raise UserError(f"invalid regular expression {pattern!r}: {e}", field="pattern") from None
    match = regex.fullmatch if fullmatch else regex.search

    def score(prediction: str, example: ExampleView) -> MetricResult:
        m = match(prediction.strip())
        return MetricResult(value=float(m is not None), detail={"match": m.group(0) if m else None})

    return score
