"""Model specs: the strings users pass to --model, parsed and checked before anything loads.

smollm2                         bundled SmolLM2-135M-Instruct (converted once, cached)
hf:PATH  | PATH (a folder)      a local Hugging Face model folder
gguf:FILE | FILE.gguf           a GGUF file (converted once to a cached HF folder)
...?adapter=DIR                 a PEFT adapter on top of that base
...?dtype=bfloat16&load_in_4bit=1   load options (part of the fingerprint)
predictions:FILE.jsonl[?match=order]  outputs made elsewhere, replayed by example id (or order)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from harness.errors import UserError

ALIASES = {"smollm2"}
DTYPES = {"float32", "bfloat16", "float16"}
_OPTIONS = {"adapter", "dtype", "load_in_4bit"}
_PREDICTION_OPTIONS = {"match"}
MATCH_MODES = ("id", "order")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec; `raw` is what the user wrote."""

    raw: str
    kind: str
    """alias | hf | gguf | predictions"""
    path: str
    """alias name, HF folder, GGUF file or predictions file."""
    adapter: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Load options that change the numbers: dtype, load_in_4bit (predictions: match)."""


def parse_model_spec(raw: str) -> ModelSpec:
    """Parse and check a spec; paths that do not exist are user errors (exit 2)."""
    text = raw.strip()
    if not text:
        raise UserError("empty model spec", field="model")
    base, _, query = text.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if base.startswith("predictions:"):
        return _predictions_spec(raw, base.removeprefix("predictions:"), params)
    unknown = set(params) - _OPTIONS
    if unknown:
        raise UserError(
            f"model spec '{raw}': unknown option '{sorted(unknown)[0]}' "
            f"(known: {', '.join(sorted(_OPTIONS))})",
            field="model",
        )
    if base in ALIASES:
        kind, path = "alias", base
    elif base.startswith("hf:"):
        kind, path = "hf", base[3:]
    elif base.startswith("gguf:"):
        kind, path = "gguf", base[5:]
    elif base.endswith(".gguf"):
        kind, path = "gguf", base
    elif ":" in base.split("/")[0] and not Path(base).exists():
        raise UserError(
            f"model spec '{raw}': unknown scheme '{base.split(':')[0]}:' "
            "(use hf:, gguf:, predictions: or smollm2)",
            field="model",
        )
    else:
        kind, path = "hf", base
    if kind != "alias":
        p = Path(path).expanduser()
        if not p.exists():
            raise UserError(f"model path does not exist: {p}", field="model")
        if kind == "hf" and not (p / "config.json").is_file():
            raise UserError(f"{p} is not a Hugging Face model folder (no config.json)", field="model")
        if kind == "gguf" and not p.is_file():
            raise UserError(f"{p} is not a GGUF file", field="model")
        path = str(p.resolve())
    options: dict[str, Any] = {}
    if "dtype" in params:
        if params["dtype"] not in DTYPES:
            raise UserError(f"model spec '{raw}': dtype must be one of {sorted(DTYPES)}", field="dtype")
        if params["dtype"] != "float32":
            options["dtype"] = params["dtype"]
    if params.get("load_in_4bit", "0") not in ("0", "1", "true", "false"):
        raise UserError(f"model spec '{raw}': load_in_4bit must be 0 or 1", field="load_in_4bit")
    if params.get("load_in_4bit") in ("1", "true"):
        options["load_in_4bit"] = True
    adapter = params.get("adapter")
    if adapter is not None:
        a = Path(adapter).expanduser()
        if not (a / "adapter_config.json").is_file():
            raise UserError(f"adapter folder {a} has no adapter_config.json", field="adapter")
        adapter = str(a.resolve())
    return ModelSpec(raw=raw, kind=kind, path=path, adapter=adapter, options=options)


def _predictions_spec(raw: str, path: str, params: dict[str, str]) -> ModelSpec:
    unknown = set(params) - _PREDICTION_OPTIONS
    if unknown:
        raise UserError(
            f"model spec '{raw}': unknown option '{sorted(unknown)[0]}' for a predictions file "
            f"(known: {', '.join(sorted(_PREDICTION_OPTIONS))})",
            field="model",
        )
    match = params.get("match", "id")
    if match not in MATCH_MODES:
        raise UserError(f"model spec '{raw}': match must be one of {', '.join(MATCH_MODES)}", field="match")
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"predictions file does not exist: {p}", field="model")
    options = {"match": match} if match != "id" else {}
    return ModelSpec(raw=raw, kind="predictions", path=str(p.resolve()), options=options)
