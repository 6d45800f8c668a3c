"""Which chat template an adapter is evaluated with, and the one it was trained with.

An adapter learns the prompt format it was trained on; evaluating it with another template
quietly collapses its scores. So every adapter evaluation records the template it used (its
sha256 and where it came from) beside the one training recorded, and says so when they differ.

Where the evaluation template comes from, first match wins:
1. the model spec's `?chat_template=` option: `trained` (the template training recorded),
   `base` (the base model's), or a file holding a Jinja template;
2. the adapter folder's own template (`chat_template.jinja`, or `chat_template` in
   `tokenizer_config.json`), as LLaMA-Factory, axolotl and unsloth save it;
3. the base model's tokenizer template.

No torch here: the CLI and the resolver read templates without loading a model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError

META_FILE = "tunegate.json"
"""What tunegate writes beside a trained adapter (trainers.register.META_FILE)."""


def template_sha(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


def folder_template(folder: Path) -> str | None:
    """The chat template saved in a model or adapter folder, if any."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tpl = cfg.get("chat_template")
    if isinstance(tpl, list):  # named templates: transformers uses "default"
        tpl = next((t.get("template") for t in tpl if t.get("name") == "default"), None)
    return tpl if isinstance(tpl, str) else None


def trained_template(adapter: Path) -> tuple[str | None, str | None]:
    """(template text, where it was recorded) that the adapter was trained with, if known:
    tunegate's own record first, else the template the adapter folder ships with."""
    try:
        meta = json.loads((adapter / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    rec = (meta or {}).get("chat_template")
    if isinstance(rec, dict) and isinstance(rec.get("text"), str):
        return rec["text"], "tunegate.json"
    own = folder_template(adapter)
    return (own, "adapter folder") if own is not None else (None, None)


def option_template(value: str, adapter: Path | None) -> tuple[str | None, str]:
    """The template a `?chat_template=` option names: (text or None for the base's, source)."""
    if value == "base":
        return None, "base"
    if value == "trained":
        if adapter is None:
            raise UserError("chat_template=trained needs an adapter (?adapter=DIR)", field="chat_template")
        text, _ = trained_template(adapter)
        if text is None:
            raise UserError(
                f"chat_template=trained: adapter {adapter} records no training template "
                "(no tunegate.json template, no tokenizer_config.json chat_template)",
                field="chat_template",
            )
        return text, "trained"
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(
            f"chat_template must be trained, base or a template file; {path} does not exist",
            field="chat_template",
        )
    return path.read_text(encoding="utf-8"), f"file {path}"


def fingerprint_value(value: str, adapter: Path | None) -> str:
    """What the fingerprint records for a `?chat_template=` option: the template's hash, so the
    same text gives the same model id however it was named."""
    text, source = option_template(value, adapter)
    return "base" if text is None else f"sha256:{template_sha(text)}"


@dataclass(frozen=True)
class TemplateChoice:
    """The template an evaluation uses and how it relates to the trained one."""

    text: str | None
    """None: the base tokenizer's template is used as it is."""
    source: str
    """option | adapter folder | base"""
    used_sha256: str | None
    trained_sha256: str | None
    trained_source: str | None

    @property
    def match(self) -> bool | None:
        """None when training recorded no template (nothing to compare with)."""
        if self.trained_sha256 is None:
            return None
        return self.used_sha256 == self.trained_sha256

    def record(self) -> dict[str, Any]:
        return {
            "sha256": self.used_sha256,
            "source": self.source,
            "trained_sha256": self.trained_sha256,
            "trained_source": self.trained_source,
            "match": self.match,
        }


def choose_template(option: str | None, adapter: Path | None, base_text: str | None) -> TemplateChoice:
    """The evaluation template for a model (base + optional adapter) and its trained twin."""
    text, source = None, "base"
    if option:
        text, source = option_template(option, adapter)
        source = "option " + source
    elif adapter is not None and (own := folder_template(adapter)) is not None:
        text, source = own, "adapter folder"
    used = text if text is not None else base_text
    trained, trained_from = trained_template(adapter) if adapter is not None else (None, None)
    return TemplateChoice(text, source, template_sha(used), template_sha(trained), trained_from)
