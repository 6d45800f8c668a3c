"""Language-aware tokenization and normalisation for the text metrics.

Every text metric takes `tokenize`:

  auto     per example, from the references' script: no CJK character → `default`,
           any CJK character → `char` (BLEU: sacrebleu `zh`). English numbers therefore
           stay identical to the reference libraries.
  default  exactly the reference behaviour: SQuAD normalisation + whitespace split (EM/F1),
           rouge-score's tokenizer (keeps only [a-z0-9]), sacrebleu `13a`.
  char     each CJK character is a token; runs of letters and digits (any script, so `Café`
           stays `café`) are words. BLEU: sacrebleu `zh`, which does the same.
  char_raw every non-space character is a token, as is: no case folding, no NFKC, punctuation
           kept (what rouge-score gives with a `list`-of-characters tokenizer). EM/F1 compare
           these tokens without any normalisation.
  jieba    jieba word segmentation (accurate mode, dictionary loaded once per process).

With `char` and `jieba`, EM/F1 use `unicode_normalize` instead of SQuAD's ASCII-only steps:
NFKC (full-width letters, digits, punctuation and the ideographic space become their ASCII
forms), optional traditional → simplified (OpenCC `t2s`), lower case, PUNCTUATION (ASCII
`string.punctuation` plus every character of Unicode category P* in the Basic Multilingual
Plane, which covers ，。！？、；：“”‘’《》【】（）…— and friends) replaced by a space, and
SQuAD's English articles; EM then compares token sequences, so whitespace (which Chinese does
not use between words) never matters. A mark separates tokens and never joins them:
`2008-08-08` is `2008 08 08` and `6.3%` is `6 3`, not `20080808` / `63`.
"""

from __future__ import annotations

import functools
import logging
import re
import string
import unicodedata
from typing import Any, Literal

Tokenize = Literal["auto", "default", "char", "char_raw", "jieba"]
MODES = ("auto", "default", "char", "char_raw", "jieba")

# Han ideographs (URO, extensions A-G, compatibility), kana and bopomofo: scripts written
# without spaces between words. Hangul is left out on purpose: Korean separates words.
_CJK_CLASS = (
    "\u3040-\u30ff\u3100-\u312f\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK = re.compile(f"[{_CJK_CLASS}]")
_WORD = re.compile(r"[^\W_]+")
_WORD_OR_MARK = re.compile(r"[^\W_]+|\S")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)


def has_cjk(text: str) -> bool:
    """True when `text` holds at least one CJK character."""
    return _CJK.search(text) is not None


def resolve(tokenize: str, references: list[str]) -> str:
    """The tokenizer one example uses: `auto` looks at the references' script."""
    if tokenize != "auto":
        return tokenize
    return "char" if any(has_cjk(r) for r in references) else "default"


@functools.cache
def punctuation() -> frozenset[str]:
    """The documented punctuation set: ASCII punctuation + every P* character of the BMP."""
    # The BMP holds all CJK and full-width punctuation; scanning the other planes costs ~0.4 s.
    uni = (chr(c) for c in range(0x10000))
    return frozenset(string.punctuation) | frozenset(c for c in uni if unicodedata.category(c)[0] == "P")


@functools.cache
def _punct_table() -> dict[int, str]:
    # To a space, not deleted: deleting glued the pieces around a mark into one token.
    return dict.fromkeys(map(ord, punctuation()), " ")


@functools.cache
def _opencc() -> Any:
    from opencc import OpenCC  # opencc-python-reimplemented: pure Python, data in the wheel

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese (OpenCC t2s)."""
    return _opencc().convert(text)


def unicode_normalize(
    text: str,
    *,
    ignore_case: bool = True,
    ignore_punctuation: bool = True,
    ignore_articles: bool = False,
    simplified: bool = False,
) -> str:
    """NFKC, [t2s], lower, PUNCTUATION → space, [drop articles], collapse whitespace."""
    text = unicodedata.normalize("NFKC", text)
    if simplified:
        text = to_simplified(text)
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = text.translate(_punct_table())
    if ignore_articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def char_tokens(text: str, *, keep_punctuation: bool = False) -> list[str]:
    """CJK characters one by one, letter/digit runs as words; marks dropped unless kept."""
    spaced = _CJK.sub(r" \g<0> ", text)
    return (_WORD_OR_MARK if keep_punctuation else _WORD).findall(spaced)


@functools.cache
def jieba_module() -> Any:
    """jieba with its dictionary loaded: once per process, on first use (~1 s)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its start-up chatter goes to stderr otherwise
    jieba.initialize()
    return jieba


def jieba_tokens(text: str, *, keep_punctuation: bool = False) -> list[str]:
    """jieba words (accurate mode); whitespace dropped, and marks unless kept."""
    words = jieba_module().lcut(text)
    if keep_punctuation:
        return [w for w in (w.strip() for w in words) if w]
    return [w for w in words if _WORD.search(w) or has_cjk(w)]


def raw_char_tokens(text: str) -> list[str]:
    """Every non-space character, unchanged (rouge-score's character convention)."""
    return [ch for ch in text if not ch.isspace()]


def tokens(text: str, mode: str, *, keep_punctuation: bool = False) -> list[str]:
    """Tokens of `text` under `char`, `char_raw` or `jieba` (`char_raw` always keeps marks)."""
    if mode == "char_raw":
        return raw_char_tokens(text)
    if mode == "jieba":
        return jieba_tokens(text, keep_punctuation=keep_punctuation)
    if mode == "char":
        return char_tokens(text, keep_punctuation=keep_punctuation)
    raise ValueError(f"tokens() needs 'char', 'char_raw' or 'jieba', not {mode!r}")


class RougeTokenizer:
    """A rouge-score tokenizer for `char`/`jieba`: NFKC, lower case, [Porter stem], no marks.

    Stemming follows rouge-score: only tokens longer than 3 characters are stemmed.
    """

    def __init__(self, mode: str, use_stemmer: bool = False) -> None:
        self.mode = mode
        self._stemmer = None
        if use_stemmer:
            from nltk.stem import porter

            self._stemmer = porter.PorterStemmer()  # as rouge-score builds it

    def tokenize(self, text: str) -> list[str]:
        if self.mode == "char_raw":  # the convention is "characters as they are": no stemming either
            return raw_char_tokens(text)
        toks = tokens(unicodedata.normalize("NFKC", text).lower(), self.mode)
        if self._stemmer is not None:
            toks = [self._stemmer.stem(t) if len(t) > 3 else t for t in toks]
        return toks
