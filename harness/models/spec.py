"""Model specs: the strings users pass to --model, parsed and checked before anything loads.

smollm2                         bundled SmolLM2-135M-Instruct (converted once, cached)
hf:PATH  | PATH (a folder)      a local Hugging Face model folder
gguf:FILE | FILE.gguf           a GGUF file (converted once to a cached HF folder)
...?adapter=DIR                 a PEFT adapter on top of that base
...?dtype=auto&device=auto&load_in_4bit=1   load options (what they resolve to is fingerprinted)
...?chat_template=trained|base|FILE  the template prompts are rendered with (adapter runs)
llamacpp:FILE.gguf[?n_ctx=N&chat_template=…]   the GGUF itself, in-process through llama.cpp
openai:MODEL@BASE_URL[?chat=1&api_key_env=…]   any OpenAI-compatible server or API
predictions:FILE.jsonl[?match=order|id]  outputs made elsewhere, replayed by example id (or order)

Which module handles a scheme is the backend registry's business (harness.models.registry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from harness.errors import UserError

ALIASES = {"smollm2"}
DTYPES = {"float32", "bfloat16", "float16"}
_OPTIONS = {"adapter", "dtype", "load_in_4bit", "device", "device_map", "chat_template"}
_PREDICTION_OPTIONS = {"match"}
MATCH_MODES = ("id", "order")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec; `raw` is what the user wrote."""

    raw: str
    kind: str
    """alias | hf | gguf | predictions | llamacpp | openai"""
    path: str
    """alias name, HF folder, GGUF file, predictions file, or an endpoint's base URL."""
    adapter: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Options as written (resolution turns device/dtype 'auto' into what is used)."""


ENDPOINT_SCHEMES = ("openai:",)
ENDPOINT_NOTE = "endpoint: weights unverified"


def is_endpoint_spec(spec: str) -> bool:
    """A model served by an endpoint, which cannot prove which weights it serves."""
    return spec.strip().startswith(ENDPOINT_SCHEMES)


def label_spec(spec: str) -> str:
    """The spec as tables show it: endpoint models are marked as such."""
    return f"{spec} [{ENDPOINT_NOTE}]" if is_endpoint_spec(spec) else spec


def parse_model_spec(raw: str) -> ModelSpec:
    """Parse and check a spec through the backend registry; bad specs are user errors (exit 2)."""
    from harness.models.registry import BACKENDS

    text = raw.strip()
    if not text:
        raise UserError("empty model spec", field="model")
    if text.endswith((".yaml", ".yml")) and Path(text).expanduser().is_file():
        from harness.models.model_file import spec_from_file

        return parse_model_spec(spec_from_file(Path(text).expanduser()))
    base, _, query = text.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    scheme, body = _scheme(base)
    if scheme is None:
        # no scheme: the alias, a .gguf file or a Hugging Face folder
        scheme = "gguf" if base.endswith(".gguf") else "hf"
        body = base
    entry = BACKENDS.get(scheme)
    return entry.load("parse")(raw, body, params)


def _scheme(base: str) -> tuple[str | None, str]:
    if base in ALIASES:
        return "hf", base
    m = re.match(r"^([A-Za-z][A-Za-z0-9_+-]*):(.*)$", base)
    if m is None or Path(base).exists():
        return None, base
    return m.group(1).lower(), m.group(2)


def check_options(raw: str, params: dict[str, str], known: set[str], what: str = "") -> None:
    """Unknown options are errors that list the known ones."""
    unknown = set(params) - known
    if unknown:
        raise UserError(
            f"model spec '{raw}': unknown option '{sorted(unknown)[0]}'{what} "
            f"(known: {', '.join(sorted(known))})",
            field="model",
        )


def parse_local(raw: str, body: str, params: dict[str, str]) -> ModelSpec:
    """hf:DIR, a folder, gguf:FILE, FILE.gguf or the smollm2 alias, with load options."""
    check_options(raw, params, _OPTIONS)
    if body in ALIASES:
        kind, path = "alias", body
    elif body.endswith(".gguf") or raw.strip().startswith("gguf:"):
        kind, path = "gguf", body
    else:
        kind, path = "hf", body
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
        if params["dtype"] not in DTYPES | {"auto"}:
            raise UserError(
                f"model spec '{raw}': dtype must be one of {sorted(DTYPES | {'auto'})}", field="dtype"
            )
        options["dtype"] = params["dtype"]
    if "device" in params:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]+)?", params["device"]):
            raise UserError(
                f"model spec '{raw}': device must be auto, cpu, cuda, cuda:N or mps", field="device"
            )
        options["device"] = params["device"]
    if "device_map" in params:
        if params["device_map"] != "auto":
            raise UserError(f"model spec '{raw}': device_map must be auto", field="device_map")
        options["device_map"] = "auto"
    if params.get("load_in_4bit", "0") not in ("0", "1", "true", "false"):
        raise UserError(f"model spec '{raw}': load_in_4bit must be 0 or 1", field="load_in_4bit")
    if params.get("load_in_4bit") in ("1", "true"):
        options["load_in_4bit"] = True
    if params.get("chat_template"):  # trained | base | a template file (harness.models.chat_template)
        tpl = params["chat_template"]
        if tpl not in ("trained", "base"):
            t = Path(tpl).expanduser()
            if not t.is_file():
                raise UserError(
                    f"model spec '{raw}': chat_template must be trained, base or a template file; "
                    f"{t} does not exist",
                    field="chat_template",
                )
            tpl = str(t.resolve())
        options["chat_template"] = tpl
    adapter = params.get("adapter")
    if adapter is not None:
        a = Path(adapter).expanduser()
        if not (a / "adapter_config.json").is_file():
            raise UserError(f"adapter folder {a} has no adapter_config.json", field="adapter")
        adapter = str(a.resolve())
    return ModelSpec(raw=raw, kind=kind, path=path, adapter=adapter, options=options)


def parse_predictions(raw: str, body: str, params: dict[str, str]) -> ModelSpec:
    return _predictions_spec(raw, body, params)


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
    # an explicit ?match=id requires ids (a file without them is refused, never matched by order);
    # it does not change the outputs, so it is left out of the fingerprint
    options = {"match": match} if "match" in params else {}
    return ModelSpec(raw=raw, kind="predictions", path=str(p.resolve()), options=options)
