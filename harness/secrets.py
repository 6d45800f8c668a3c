"""Secret values (API keys from the environment) scrubbed from every text stored, logged or rendered.

Configs name the environment variables that hold keys (a judge endpoint's `api_key_env`, an
`openai:` backend's key); each registers the name here with `register_secret_env`. Whatever
repeats a key — a judge quoting the Authorization header in its rationale, a server error, a
model's output — has it replaced by `***` at the store's write boundary, in logs and in reports.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from typing import Any, overload

MASK = "***"
MIN_LENGTH = 8
"""Shorter values are not treated as secrets: masking every 'abc' in outputs would corrupt them."""

# Always scrubbed: the judge's default key variable and the usual OpenAI one.
_ENV_NAMES: set[str] = {"TUNEGATE_JUDGE_API_KEY", "OPENAI_API_KEY"}


def register_secret_env(name: str) -> None:
    """Treat the value of environment variable `name` as a secret from now on."""
    if name:
        _ENV_NAMES.add(name)


def secret_values() -> list[str]:
    """The current values of every registered variable (read now: keys may be set late), longest
    first so a key that contains another is masked whole."""
    values = {os.environ.get(n, "") for n in _ENV_NAMES}
    return sorted((v for v in values if len(v) >= MIN_LENGTH), key=len, reverse=True)


@overload
def scrub(text: str) -> str: ...
@overload
def scrub(text: None) -> None: ...
@overload
def scrub(text: str | None) -> str | None: ...
def scrub(text: str | None) -> str | None:
    """`text` with every secret value replaced by ***, however it is written — raw, JSON- or
    `\\u`-escaped, URL-encoded, or broken by whitespace — and the credentials of every URL
    (`http://user:pass@host` → `http://***@host`). Call it before cutting a text: a cut key is
    no longer found."""
    if not text:
        return text
    if "@" in text:
        text = _URL_USERINFO.sub(r"\1" + MASK + "@", text)
    for value in secret_values():
        if value in text:
            text = text.replace(value, MASK)
        escaped = json.dumps(value)[1:-1]
        if escaped != value and escaped in text:
            text = text.replace(escaped, MASK)
        text = _spelled(value).sub(MASK, text)
    return text


# scheme://userinfo@ — the userinfo (user, password or token) is a credential
_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@\"'<>]+@")
_GAP = r"(?:\s|\\[nrt]|%0[aAdD]|%09|%20)*"  # whitespace (raw, escaped or encoded) inside a key


@functools.lru_cache(maxsize=64)
def _spelled(value: str) -> re.Pattern[str]:
    """Every character of `value` as itself, `\\uXXXX` or `%XX`, with whitespace allowed between."""
    alts = []
    for ch in value:
        forms = [re.escape(ch)]
        if ord(ch) < 0x10000:
            forms.append(r"\\u(?i:" + f"{ord(ch):04x})")
        if ord(ch) < 0x80:
            forms.append(f"%(?i:{ord(ch):02x})")
        alts.append("(?:" + "|".join(forms) + ")")
    return re.compile(_GAP.join(alts))


def scrub_data(value: Any) -> Any:
    """Every string inside a JSON-like value scrubbed (dict keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_data(k): scrub_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(v) for v in value]
    return value


class ScrubFilter(logging.Filter):
    """A handler filter: the formatted message (and any traceback text) without secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def install_log_filter() -> None:
    """Scrub every record that reaches the root logger's handlers."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
