"""Which token an endpoint's scored texts are predicted from, found without asking the user.

The local backends score a text's first token from the tokenizer's BOS (else EOS) token, as
lm-eval does; an OpenAI-compatible server scores a prompt's first token only if something comes
before it. So `openai:` puts that token's text in front of every scored text. Where it comes from,
in order:

1. `?prefix=TEXT` (source "option"; `?prefix=` with no text turns the search off),
2. `?tokenizer=DIR`: that tokenizer's BOS, else EOS (source "tokenizer"),
3. what `/v1/models` says the server loaded (vLLM's `root`, or a served model id that is a path),
   when it is on this machine: an HF folder (source "server") or a GGUF file, whose metadata
   names the BOS/EOS token (source "gguf").

Nothing found: today's convention, recorded as "first token unscored", so a comparison with a
local run can tell the two apart.

`vocab_hash` identifies a tokenizer by its vocabulary (each token's text, by id), which reads the
same from a transformers tokenizer, a `tokenizer.json` and a GGUF's token list: a local run and an
endpoint run of the same weights report the same hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Source = Literal["option", "tokenizer", "server", "gguf"]


@dataclass(frozen=True)
class Scoring:
    """How a backend scores texts: what decides whether two perplexities mean the same thing."""

    tokenizer: str | None
    """`vocab_hash` of the tokenizer, when it is known."""
    prefix_token: str | None
    """Text of the token every scored text is predicted from (None: nothing before the text)."""
    first_token_scored: bool
    """Whether a text's first token counts (False: it has no context and is left out)."""
    prefix_source: Source | None
    """Where the prefix token came from (None: no prefix)."""

    def record(self) -> dict[str, Any]:
        return asdict(self)


UNSCORED = Scoring(None, None, False, None)


def vocab_hash(tokens_by_id: Sequence[str | None]) -> str:
    """Short sha256 of the token texts in id order (a gap, which no real tokenizer has, is null)."""
    blob = json.dumps(list(tokens_by_id), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _by_id(vocab: dict[str, int]) -> list[str | None]:
    out: list[str | None] = [None] * (max(vocab.values(), default=-1) + 1)
    for text, i in vocab.items():
        out[i] = text
    return out


def hf_tokenizer_facts(tok: Any) -> tuple[str, str | None]:
    """(vocab hash, prefix text) of a transformers tokenizer: BOS, else EOS (lm-eval's choice)."""
    prefix = tok.bos_token if tok.bos_token is not None else tok.eos_token
    return vocab_hash(_by_id(tok.get_vocab())), prefix


def folder_facts(folder: Path) -> tuple[str, str | None] | None:
    """(vocab hash, prefix text) of the tokenizer in an HF folder; None when there is none."""
    if not ((folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()):
        return None
    try:
        from transformers import AutoTokenizer
    except ImportError:  # a core-only install: read the files the way transformers does
        return _folder_facts_json(folder)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder))
    except Exception as e:  # a broken or foreign folder: no prefix from it, never a crash
        log.warning("cannot read the tokenizer in %s (%s)", folder, type(e).__name__)
        return None
    return hf_tokenizer_facts(tok)


def _folder_facts_json(folder: Path) -> tuple[str, str | None] | None:
    try:
        doc = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = dict(doc["model"]["vocab"])
        for t in doc.get("added_tokens", []):
            vocab[t["content"]] = t["id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    special: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the config wins
        try:
            special.update(json.loads((folder / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass

    def text(key: str) -> str | None:
        v = special.get(key)
        return v.get("content") if isinstance(v, dict) else v if isinstance(v, str) else None

    prefix = text("bos_token") or text("eos_token")
    return vocab_hash(_by_id(vocab)), prefix


def gguf_facts(path: Path) -> tuple[str, str | None] | None:
    """(vocab hash, prefix text) from a GGUF's metadata: `tokenizer.ggml.tokens`, and the BOS
    (else EOS) token id. None without the `gguf` package or a token list."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # not a GGUF, truncated, a newer format version
        log.warning("cannot read GGUF metadata of %s (%s)", path, type(e).__name__)
        return None
    field = reader.fields.get("tokenizer.ggml.tokens")
    if field is None:
        return None
    tokens = [bytes(field.parts[i]).decode("utf-8", errors="replace") for i in field.data]

    def token_id(key: str) -> int | None:
        f = reader.fields.get(key)
        return int(f.parts[f.data[0]][0]) if f is not None and f.data else None

    prefix = None
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        i = token_id(key)
        if i is not None and 0 <= i < len(tokens):
            prefix = tokens[i]
            break
    return vocab_hash(tokens), prefix


def served_paths(entry: dict[str, Any] | None, model: str) -> list[Path]:
    """Local paths the server says it loaded: vLLM's `root` (for a LoRA module, the adapter
    folder, usually without a tokenizer) and `parent` (a LoRA module's base), and a model id that
    is a path (vLLM without --served-model-name, llama-cpp-python without an alias)."""
    out: list[Path] = []
    entry = entry or {}
    for value in (entry.get("root"), entry.get("parent"), entry.get("id"), model):
        if isinstance(value, str) and value.startswith(("/", "~", ".")):
            p = Path(value).expanduser()
            if p.exists() and p not in out:
                out.append(p)
    return out


def find_scoring(options: dict[str, Any], entry: dict[str, Any] | None) -> Scoring:
    """The scoring convention of an endpoint, from its options and its /v1/models entry."""
    explicit = options.get("prefix")
    facts: tuple[tuple[str, str | None], Source] | None = None
    if options.get("tokenizer"):
        found = folder_facts(Path(options["tokenizer"]))
        if found is not None:
            facts = (found, "tokenizer")
    if facts is None:
        for p in served_paths(entry, str(options.get("model", ""))):
            if p.is_dir():
                found = folder_facts(p)
                source: Source = "server"
            elif p.suffix.lower() == ".gguf":
                found, source = gguf_facts(p), "gguf"
            else:
                continue
            if found is not None:
                facts = (found, source)
                break
    vocab = facts[0][0] if facts else None
    if explicit is not None:  # given, even as "" (no prefix: the search is off)
        if explicit:
            return Scoring(vocab, explicit, True, "option")
        return Scoring(vocab, None, False, None)
    if facts is None or not facts[0][1]:
        return Scoring(vocab, None, False, None)
    return Scoring(vocab, facts[0][1], True, facts[1])
