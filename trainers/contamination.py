"""Train↔eval contamination: which suite examples a training file already contains.

Every text is normalised the same way first (NFKC, casefold, anything not a letter or digit
becomes a space, spaces collapsed) and cut into tokens: words, except that each CJK character
(Han, kana, bopomofo) is a token of its own, because unsegmented text has no words to count.
Three methods, each stored under its name:

- ``exact``: a suite text field (a prompt field or the reference) of at least 4 tokens equals a
  training text field.
- ``ngram``: a training record contains a 13-token span of a suite text (the GPT-3 / lm-eval
  decontamination convention; for Chinese that is 13 characters). Texts of 8–12 tokens count
  as one span of their own length (GPT-3 clamps n to [8, 13]); shorter ones only match exactly.
  The score is the share of the text's distinct spans the record contains.
- ``minhash``: MinHash LSH (datasketch) near-duplicates of the example's whole text (all its
  fields) against the record's whole text, on token-bigram shingles; the score is the MinHash
  estimate of their Jaccard similarity, kept when it reaches ``threshold``.

All of it is vectorised over one concatenated token array per side, so a 100k-record file
against 10k examples takes seconds (bench/bench_contamination.py), not the hours of all pairs.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.suite import suite_id

METHODS = ("exact", "ngram", "minhash")
NGRAM = 13
MIN_NGRAM = 8
"""Texts shorter than NGRAM but at least this long are one span; shorter ones: exact only."""
MIN_EXACT = 4
"""Shorter fields never count as exact copies: a one-word answer ("Paris", "positive") equal to a
training field is a coincidence, not a leaked example."""
SHINGLE = 2
NUM_PERM = 64
THRESHOLD = 0.5
MAX_RECORDS_PER_EXAMPLE = 20
"""Matches kept per (example, method): enough to show where, bounded for boilerplate spans."""

_CJK = "\u3040-\u30ff\u3100-\u312f\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_NOT_ALNUM = re.compile(r"[\W_]+")
_SKIP_KEYS = {"id", "role", "from", "task", "doc_id", "input_ids"}
_P = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier: the rolling polynomial hash of spans
_MASK32 = np.uint64(0xFFFFFFFF)


def normalize(text: str) -> str:
    """NFKC, casefolded, punctuation and symbols (any script) replaced by one space."""
    return " ".join(tokens(text))


def tokens(text: str) -> list[str]:
    """Normalised tokens: words, and every CJK character on its own."""
    return _TOKEN.findall(_NOT_ALNUM.sub(" ", unicodedata.normalize("NFKC", text).casefold()))


@dataclass(frozen=True)
class Match:
    """One finding: this suite example's text is in this training record, by this method."""

    suite_id: str
    suite_name: str
    example_id: str
    train_file: str
    record: int
    """Line of the record in the training file (1-based, as `data check` reports it)."""
    method: str
    score: float
    field: str | None = None
    """The suite field that matched (exact, ngram); None for the whole-example MinHash."""


@dataclass
class Scan:
    """A contamination scan of some training files against some suites."""

    train_files: list[str]
    suites: list[dict[str, Any]]
    """Per suite: suite_id, name, n_examples, contaminated (ids), by method counts."""
    matches: list[Match]
    n_records: int
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


# -- texts -----------------------------------------------------------------------------------
def _strings(value: Any, skip: set[str] = _SKIP_KEYS) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in skip:
                yield from _strings(v, skip)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v, skip)


def example_fields(suite: Any, ex: Any) -> list[tuple[str, str]]:
    """(field, text) pairs of one suite example: its prompt fields and its references.

    Benchmark examples compare their lm-eval `doc` (the rendered prompt carries few-shot
    examples and template text that would match every record made from the same template).
    """
    rec = ex.record
    id_field = getattr(getattr(suite, "config", None), "id_field", "id")
    source = rec["doc"] if isinstance(rec.get("doc"), dict) else rec
    out = []
    for key, value in source.items():
        if key in _SKIP_KEYS or key == id_field or (source is rec and key in ("input", "target")):
            continue
        out += [(key, s) for s in _strings(value) if s.strip()]
    refs = {normalize(t) for _, t in out}
    out += [("reference", r) for r in ex.references if r.strip() and normalize(r) not in refs]
    return out


@dataclass
class _Side:
    """One side's texts as one token-id array with owner indices (a record, or a suite text)."""

    ids: np.ndarray  # uint64 token ids, +1 so 0 never occurs
    owner: np.ndarray  # int64 owner of each token
    lens: np.ndarray  # tokens per owner


def _token_id(token: str) -> int:
    """A stable 63-bit id (the +1 of ``_Side.ids`` cannot overflow)."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little") >> 1


class _Tokens:
    """Token ids of many texts, built batch by batch: no per-token Python object outlives a batch."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab
        self.parts: list[np.ndarray] = []
        self.lens: list[int] = []
        self._flat: list[str] = []
        self._open = 0

    def extend(self, toks: list[str]) -> None:
        self._flat += toks
        self._open += len(toks)

    def close(self) -> None:
        """End the current owner (a record, a text)."""
        self.lens.append(self._open)
        self._open = 0
        if len(self._flat) > 1 << 20:
            self._flush()

    def _flush(self) -> None:
        v = self.vocab
        # one dict probe per distinct token; the id is a hash of the token itself, so a text's
        # signature never depends on set order (PYTHONHASHSEED) or on the other texts scanned
        m = {t: v[t] if t in v else v.setdefault(t, _token_id(t)) for t in set(self._flat)}
        self.parts.append(np.fromiter(map(m.__getitem__, self._flat), dtype=np.uint64, count=len(self._flat)))
        self._flat = []

    def side(self) -> _Side:
        self._flush()
        ids = np.concatenate([np.zeros(0, np.uint64), *self.parts]) + np.uint64(1)
        lens = np.asarray(self.lens, dtype=np.int64)
        return _Side(ids, np.repeat(np.arange(len(lens), dtype=np.int64), lens), lens)


def _spans(side: _Side, lengths: Iterable[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(length, hashes, start positions) of every span inside one owner, for each wanted length.

    The polynomial hash of a span of L tokens extends the (L-1)-span hash by one token, so all
    lengths up to the largest cost one multiply-add pass each over the whole array.
    """
    want, n = set(lengths), len(side.ids)
    h = side.ids.copy()
    with np.errstate(over="ignore"):
        for length in range(1, max(want, default=0) + 1):
            if length > n:
                return
            if length > 1:
                h = h[:-1] * _P + side.ids[length - 1 :]
            if length in want:
                start = np.flatnonzero(side.owner[: n - length + 1] == side.owner[length - 1 :])
                yield length, h[start], start


# -- the scan --------------------------------------------------------------------------------
def scan(
    train_files: Sequence[Path],
    suites: Sequence[Any],
    *,
    ngram: int = NGRAM,
    threshold: float = THRESHOLD,
    num_perm: int = NUM_PERM,
    methods: Sequence[str] = METHODS,
) -> Scan:
    """Find every suite example that some training record contains, by each method."""
    t0 = time.perf_counter()
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold must be in (0, 1], got {threshold}", field="threshold")
    if ngram < MIN_NGRAM:
        raise UserError(f"--ngram must be at least {MIN_NGRAM}, got {ngram}", field="ngram")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise UserError(f"unknown method(s) {sorted(unknown)}; known: {', '.join(METHODS)}", field="method")
    vocab: dict[str, int] = {}
    # suite side: one text per field (exact, ngram); their union per example (MinHash)
    suite_tok = _Tokens(vocab)
    texts: list[tuple[int, str]] = []  # (example index, field)
    examples: list[tuple[dict[str, Any], str]] = []  # (suite info, example id)
    exact: dict[str, list[int]] = defaultdict(list)
    infos = []
    for suite in suites:
        name = suite.config.name
        info = {"suite_id": suite_id(suite), "name": name, "n_examples": len(suite.examples)}
        infos.append(info)
        n_text = 0
        for ex in suite.examples:
            examples.append((info, ex.id))
            for fname, text in example_fields(suite, ex):
                toks = tokens(text)
                if toks:
                    n_text += 1
                    if len(toks) >= MIN_EXACT:
                        exact[" ".join(toks)].append(len(texts))
                    texts.append((len(examples) - 1, fname))
                    suite_tok.extend(toks)
                    suite_tok.close()
        if not n_text:
            raise UserError(
                f"suite '{name}' has no text fields to compare (no prompt field or reference holds text)",
                path=getattr(suite, "path", None),
            )
    records: list[tuple[str, int]] = []  # (file, line)
    train_tok = _Tokens(vocab)
    exact_hits: list[tuple[int, int]] = []  # (suite text, record)
    for path in train_files:
        for line, strings in _training_records(Path(path)):
            for s in strings:
                toks = tokens(s)
                if toks and "exact" in methods:
                    exact_hits += [(ti, len(records)) for ti in exact.get(" ".join(toks), ())]
                train_tok.extend(toks)
            train_tok.close()
            records.append((str(path), line))
    matches: dict[tuple[int, str, int, str], Match] = {}

    def add(k: int, method: str, rec: int, score: float, fname: str | None) -> None:
        info, ex_id = examples[k]
        key = (k, method, rec, fname or "")
        if key not in matches or matches[key].score < score:
            file, line = records[rec]
            matches[key] = Match(info["suite_id"], info["name"], ex_id, file, line, method, score, fname)

    for ti, rec in exact_hits:
        add(texts[ti][0], "exact", rec, 1.0, texts[ti][1])
    suite_side, train = suite_tok.side(), train_tok.side()
    if "ngram" in methods and len(records):
        for ti, rec, score in _ngram_matches(suite_side, train, ngram):
            add(texts[ti][0], "ngram", rec, score, texts[ti][1])
    if "minhash" in methods and len(records):
        text_example = np.asarray([k for k, _ in texts], dtype=np.int64)
        by_example = _Side(suite_side.ids, text_example[suite_side.owner], np.zeros(0, np.int64))
        for k, rec, score in _minhash_matches(
            by_example, len(examples), train, len(records), threshold, num_perm
        ):
            add(k, "minhash", rec, score, None)
    kept = _cap(list(matches.values()))
    for info in infos:
        mine = [m for m in kept if m.suite_id == info["suite_id"]]
        info["contaminated"] = sorted({m.example_id for m in mine})
        info["by_method"] = {meth: len({m.example_id for m in mine if m.method == meth}) for meth in METHODS}
    params = {"ngram": ngram, "min_ngram": MIN_NGRAM, "shingle": SHINGLE, "threshold": threshold,
              "num_perm": num_perm, "methods": list(methods)}  # fmt: skip
    return Scan([str(p) for p in train_files], infos, kept, len(records), params, time.perf_counter() - t0)


def _training_records(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line, text fields) of every record of a training file, in any supported format."""
    from trainers.data import read_data

    if not path.is_file():
        raise UserError("training file not found", path=path)
    data = read_data(path)
    if data.bad:
        line, why = data.bad[0]
        raise UserError(f"cannot read record: {why}", path=path, line=line)
    for ex in data.examples:
        yield ex.line, [s for s in _strings(ex.raw) if s.strip()]


def _ngram_matches(suite: _Side, train: _Side, n: int) -> Iterator[tuple[int, int, float]]:
    """(suite text, record, share of the text's spans in the record) for every record that
    contains at least one span. Texts of n tokens or more give their n-spans; texts of
    MIN_NGRAM..n-1 tokens are one span of their own length."""
    span_len = np.where(suite.lens >= n, n, suite.lens)
    lengths = sorted({int(x) for x in span_len[suite.lens >= MIN_NGRAM]})
    found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for length, h, start in _spans(suite, lengths):
        owner = suite.owner[start]
        keep = span_len[owner] == length
        if length < n:  # a short text is only the span that starts where it starts
            keep &= start == np.searchsorted(suite.owner, owner)
        found[length] = (h[keep], owner[keep])
    total = np.zeros(len(suite.lens), dtype=np.int64)
    for length, (h, owner) in found.items():
        pairs = np.unique(np.stack([owner, h.view(np.int64)], axis=1), axis=0)
        total += np.bincount(pairs[:, 0], minlength=len(total))
        order = np.argsort(h, kind="stable")
        found[length] = (h[order], owner[order])
    mask = np.uint64((1 << 24) - 1)
    for length, th, start in _spans(train, found):
        sh, so = found[length]
        if not len(sh):
            continue
        # a bit table of the suite's hashes drops almost every training span before the search
        table = np.zeros(1 << 24, dtype=bool)
        table[sh & mask] = True
        cand = np.flatnonzero(table[th & mask])
        th, start = th[cand], start[cand]
        lo, hi = np.searchsorted(sh, th, "left"), np.searchsorted(sh, th, "right")
        reps = hi - lo
        if not reps.any():
            continue
        # a span may belong to several suite texts: one row per (text, record, span)
        idx = np.repeat(lo, reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
        rec = np.repeat(train.owner[start], reps)
        triples = np.unique(np.stack([so[idx], rec, sh[idx].view(np.int64)], axis=1), axis=0)
        uniq, counts = np.unique(triples[:, :2], axis=0, return_counts=True)
        for (ti, r), c in zip(uniq.tolist(), counts.tolist()):
            yield ti, r, c / int(total[ti])


def _minhash_matches(
    suite: _Side, n_examples: int, train: _Side, n_records: int, threshold: float, num_perm: int
) -> Iterator[tuple[int, int, float]]:
    """(example, record, estimated Jaccard): the suite's signatures in a datasketch LSH index,
    every training record's signature queried against it."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    a, b = MinHash(num_perm=num_perm, seed=1, scheme="legacy").permutations
    sig_s, has_s = signatures(suite, n_examples, a, b)
    sig_t, has_t = signatures(train, n_records, a, b)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for k in np.flatnonzero(has_s).tolist():
            session.insert(
                k, LeanMinHash(seed=1, hashvalues=sig_s[k], scheme="legacy"), check_duplication=False
            )
    for r in np.flatnonzero(has_t).tolist():
        for k in lsh.query(LeanMinHash(seed=1, hashvalues=sig_t[r], scheme="legacy")):
            j = float(np.count_nonzero(sig_s[k] == sig_t[r])) / num_perm
            if j >= threshold:
                yield k, r, j


def signatures(side: _Side, n_owners: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's legacy MinHash of each owner's token-bigram shingles (32-bit hash values).

    The same permutation as ``MinHash.update_batch``: ((hv * a + b) mod (2^61 - 1)) & (2^32 - 1),
    minimised per owner; computed in chunks that end on owner boundaries.
    """
    prime, max_hash = np.uint64((1 << 61) - 1), np.uint64((1 << 32) - 1)
    [(_, h, start)] = list(_spans(side, [SHINGLE])) or [(0, np.zeros(0, np.uint64), np.zeros(0, np.int64))]
    hv = h & _MASK32
    owner = side.owner[start]
    sig = np.full((n_owners, len(a)), max_hash, dtype=np.uint64)
    has = np.zeros(n_owners, dtype=bool)
    if not len(hv):
        return sig, has
    step = max(1, (1 << 22) // len(a))
    i = 0
    with np.errstate(over="ignore"):
        while i < len(hv):
            j = min(len(hv), i + step)
            while j < len(hv) and owner[j] == owner[j - 1]:
                j += 1
            phv = np.bitwise_and((hv[i:j, None] * a + b) % prime, max_hash)
            o = owner[i:j]
            bounds = np.flatnonzero(np.r_[True, o[1:] != o[:-1]])
            sig[o[bounds]] = np.minimum.reduceat(phv, bounds, axis=0)
            has[o[bounds]] = True
            i = j
    return sig, has


def _cap(matches: list[Match]) -> list[Match]:
    """At most MAX_RECORDS_PER_EXAMPLE records per (example, method), best scores first."""
    groups: dict[tuple[str, str, str], list[Match]] = defaultdict(list)
    for m in matches:
        groups[(m.suite_id, m.example_id, m.method)].append(m)
    out = []
    for g in groups.values():
        g.sort(key=lambda m: (-m.score, m.train_file, m.record))
        out += g[:MAX_RECORDS_PER_EXAMPLE]
    return sorted(out, key=lambda m: (m.suite_name, m.example_id, m.method, -m.score, m.record))
