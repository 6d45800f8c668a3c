"""`data check` on Chinese SFT data: character lengths, n-gram near-duplicates, mixed scripts."""

from __future__ import annotations

import itertools
import json
import unicodedata

from tests.conftest import run_cli
from trainers.checks import check_file
from trainers.text_checks import near_duplicate_groups

ANSWERS = [
    "您好，自签收之日起7天内可以无理由退货。",
    "您好，退款审核通过后1到3个工作日原路退回。",
    "可以，在订单详情页申请电子发票即可。",
    "订单满99元免运费，不满99元收取8元运费。",
    "支持微信支付、支付宝和银行卡支付。",
    "在线客服每天早上9点到晚上10点为您服务。",
]


def _rec(i: int, q: str, a: str) -> dict:
    return {"id": f"z{i}", "instruction": q, "output": a}


def ref_shingles(text: str) -> set[str]:
    """Independent: NFKC casefold, letters and digits only, no spaces, character 3-grams."""
    t = "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())
    return {t[i : i + 3] for i in range(len(t) - 2)} if len(t) > 3 else {t}


def brute_force_groups(texts: list[str], lines: list[int]) -> list[list[int]]:
    sets = [ref_shingles(t) for t in texts]
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j in itertools.combinations(range(len(texts)), 2):
        if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.8:
            parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(find(i), []).append(lines[i])
    return sorted(g for g in groups.values() if len(g) > 1)


def test_ngram_near_duplicates_equal_brute_force() -> None:
    texts = [f"问题{i}：{a}" for i, a in enumerate(ANSWERS)]
    texts += [
        texts[0].replace("7天", "七天"),  # one word changed
        texts[1] + "谢谢！",  # a tail added
        texts[2].replace("，", " , "),  # punctuation and spacing only
        "A completely different English sentence about shipping costs.",
        "A completely different English sentence about shipping cost!",
        "短",
        "短",
    ]
    lines = list(range(1, len(texts) + 1))
    got = near_duplicate_groups(texts, lines)
    assert got == brute_force_groups(texts, lines)
    assert [3, 9] in got and [10, 11] in got  # the planted ones are found
    assert not any(1 in g and 2 in g for g in got)  # same template, different answer: not a duplicate


def test_data_check_reports_characters_near_duplicates_and_scripts(tmp_path, smollm2) -> None:
    rows = [_rec(i, f"问题{i}", a) for i, a in enumerate(ANSWERS, start=1)]
    rows.append(_rec(7, "问题1", ANSWERS[0].replace("，", "！")))  # line 7: near-duplicate of line 1
    rows.append(_rec(8, "退貨", "請聯繫客服，我們會盡快處理。"))  # line 8: traditional
    rows.append(_rec(9, "退货", "请联系客服，我們会尽快处理。"))  # line 9: 們 (traditional) among simplified
    path = tmp_path / "zh.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    r = check_file(path, smollm2.tokenizer)

    chars = sorted(len(x["output"]) for x in rows)
    assert (r.output_chars.n, r.output_chars.min, r.output_chars.max) == (len(rows), chars[0], chars[-1])
    assert r.output_chars.median == chars[len(chars) // 2]
    # model tokens are still the tokenizer's own count
    toks = sorted(len(smollm2.tokenizer(x["output"], add_special_tokens=False)["input_ids"]) for x in rows)
    assert (r.output_tokens.min, r.output_tokens.max) == (toks[0], toks[-1])

    assert r.near_duplicates == [[1, 7]]
    assert r.mixed_script == [9]
    assert r.scripts == {"simplified": 7, "traditional": 1}
    assert any("mix traditional and simplified" in w and "9" in w for w in r.warnings)
    assert any("mixes scripts: 7 simplified and 1 traditional" in w for w in r.warnings)
    # first "words" of Chinese replies are their first two characters
    assert dict(r.first_words["top"])["您好"] == 3


def test_cli_data_check_shows_chinese_rows(tmp_path) -> None:
    path = tmp_path / "zh.jsonl"
    rows = [_rec(i, f"问题{i}", a) for i, a in enumerate(ANSWERS, start=1)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = run_cli("data", "check", str(path), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["scripts"] == {"simplified": len(ANSWERS)} and report["mixed_script"] == []
    assert report["output_chars"]["max"] == max(len(a) for a in ANSWERS)
