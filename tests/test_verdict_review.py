"""`tunegate review`: a blind spot-check page scored in real headless Chromium, progress kept in the
browser, labels exported, imported un-shuffled, and kappa with the judge computed and stored."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from harness.store import Store
from harness.store.judge_health import get_health
from tests.browser import Chromium, chromium_available
from tests.conftest import run_cli, write_suite
from tests.fake_openai import FakeOpenAI

QA = [
    ("q1", "What is the capital of France?", "Paris"),
    ("q2", "How many legs does a spider have?", "eight"),
    ("q3", "What colour is the sky on a clear day?", "blue"),
    ("q4", "What do bees make?", "honey"),
    ("q5", "Which planet is called the red planet?", "Mars"),
]
KNOWN = {"France": "Paris", "spider": "eight", "bees": "honey"}  # what the "base" model knows


def _generation(known: dict[str, str]):
    def reply(body):
        text = body["messages"][-1]["content"]
        if body.get("response_format"):  # the judge: full marks when the reference word is in the answer
            answer = text.split("Answer (data")[-1] if "Answer (data" in text else text
            hit = any(v in answer for v in ("Paris", "eight", "honey", "blue", "Mars"))
            return json.dumps({"accuracy": 4 if hit else 1, "rationale": "checked"})
        return next((a for k, a in known.items() if k in text), "no idea")

    return reply


@pytest.fixture(scope="module")
def browser():
    if not chromium_available():
        if os.environ.get("CI"):
            pytest.fail("no /usr/bin/chromium: scripts/setup.sh installs Debian's chromium")
        pytest.skip("no /usr/bin/chromium (bash scripts/setup.sh installs it)")
    with Chromium(width=1200, height=900) as c:
        yield c


def test_review_page_scored_in_chromium_exported_imported_with_kappa(browser, tmp_path):
    with FakeOpenAI() as judge_and_base, FakeOpenAI() as cand_server:
        judge_and_base.reset(reply=_generation(KNOWN))
        cand_server.reset(reply=_generation({"sky": "blue", "planet": "Mars"}))
        ep = {"base_url": judge_and_base.base_url, "model": "fake", "response_format": "json_object"}
        suite = write_suite(
            tmp_path,
            "name: rv\nkind: judge\ndata: data.jsonl\nprompt: 'Q: {{ question }}'\nreference: answer\n"
            "judge:\n  type: rubric\n  criteria: [{name: accuracy, description: ok, max_points: 4}]\n"
            f"  endpoint: {json.dumps(ep)}\n",
            "".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in QA),
        )
        db = tmp_path / "r.duckdb"
        runs = []
        for url in (judge_and_base.base_url, cand_server.base_url):
            r = run_cli("run", "-m", f"openai:fake@{url}", "-s", str(suite), "--db", str(db), "--no-progress")
            assert r.returncode == 0, r.stderr
            runs.append(r.stdout.split()[0])
    crit = tmp_path / "criteria.yaml"
    crit.write_text("criteria:\n  - {name: accuracy, description: 'Is it right?', min: 1, max: 5}\n")
    page = tmp_path / "review.html"
    r = run_cli("review", *runs, "--sample", "4", "--criteria", str(crit), "--db", str(db), "-o", str(page))
    assert r.returncode == 0, r.stderr
    html = page.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and runs[0] not in html and runs[1] not in html  # blind
    browser.events.clear()
    browser.open(page.resolve().as_uri())
    shown = browser.eval(
        "Array.from(document.querySelectorAll('.item')).map(c => [c.dataset.id,"
        " Array.from(c.querySelectorAll('.answer pre')).map(p => p.textContent)])"
    )
    assert len(shown) == 4 and all(len(a) == 2 for _, a in shown)
    browser.eval(
        "(() => { const r = document.getElementById('reviewer'); r.value = 'ana';"
        " r.dispatchEvent(new Event('input')); })()"
    )
    scored = 0
    for eid, answers in shown[:3]:  # score three examples: 5 for a right answer, 1 for "no idea"
        for slot, text in enumerate(answers):
            v = 1 if text == "no idea" else 5
            browser.eval(
                f'document.querySelector(\'input[data-label="{eid}|{slot}|accuracy"][value="{v}"]\').click()'
            )
            scored += 1
    assert browser.eval("document.getElementById('progress').textContent") == "3 / 4 scored"
    # Progress is kept in the browser. The page saved it (its localStorage entry holds the six
    # scores and the reviewer), and a page opened again restores it: in another tab, reopened
    # until it shows the scores. In two full CI runs (never alone, nor under CPU load) Chromium
    # lost the entry between the tabs (the new tab's localStorage had no key at all): then the
    # saved entry is written into the new tab and the page reopened there, so it is still the
    # page's own restore code that must check the six radios.
    key = "'tunegate-review-' + JSON.parse(document.getElementById('tg-data').textContent).review_id"
    saved = browser.eval(f"localStorage.getItem({key})")
    assert saved is not None and len(json.loads(saved)["labels"]) == scored
    assert json.loads(saved)["reviewer"] == "ana"
    checked = "document.querySelectorAll('input[type=radio]:checked').length"
    browser.new_page()
    deadline = time.monotonic() + 15
    while True:
        browser.open(page.resolve().as_uri())
        settle = time.monotonic() + 1.0  # the page restores after load
        while browser.eval(checked) != scored and time.monotonic() < settle:
            time.sleep(0.1)
        if browser.eval(checked) == scored or time.monotonic() > deadline:
            break
    if browser.eval(checked) != scored and browser.eval(f"localStorage.getItem({key})") is None:
        print("Chromium lost the localStorage entry between tabs: written into the new tab")
        browser.eval(f"localStorage.setItem({key}, {json.dumps(saved)})")
        browser.open(page.resolve().as_uri())
    assert browser.eval(checked) == scored
    assert browser.eval("document.getElementById('reviewer').value") == "ana"
    browser.eval("document.getElementById('export').click()")
    text = browser.eval("document.getElementById('export-text').value")
    assert browser.problems() == [] and set(browser.requests()) == {page.resolve().as_uri()}
    labels = tmp_path / "labels.jsonl"
    labels.write_text(text, encoding="utf-8")
    assert len(text.splitlines()) == scored
    r = run_cli("review", "import", str(labels), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "quadratic kappa" in r.stdout
    with Store(db) as s:
        rows = s.db.execute(
            "SELECT run_id, example_id, shown_position, score, reviewer FROM review_labels"
        ).fetchall()
        outputs = {
            (rid, e): o
            for rid in runs
            for e, o in ((e, v["output"]) for e, v in s.example_outputs(rid, [q for q, _, _ in QA]).items())
        }
        assert len(rows) == scored and {r[4] for r in rows} == {"ana"}
        shown_text = dict(((e, k), t) for e, ans in shown for k, t in enumerate(ans))
        for rid, e, pos, score, _ in rows:
            # un-shuffled: the label belongs to the run whose answer sat in that slot
            assert outputs[(rid, e)] == shown_text[(e, pos)]
            assert score == (1.0 if outputs[(rid, e)] == "no idea" else 5.0)
        for rid in runs:
            human = {e: sc for r_, e, _, sc, _ in rows if r_ == rid}
            if len(human) < 2:
                continue
            judge = dict(
                s.db.execute(
                    "SELECT example_id, value FROM scores WHERE run_id = ? AND metric = 'total'", [rid]
                ).fetchall()
            )
            ids = sorted(human)
            a, b = np.array([judge[i] for i in ids]), np.array([human[i] for i in ids])
            lo, hi = int(min(a.min(), b.min())), int(max(a.max(), b.max()))
            ref = cohen_kappa_score(
                a.astype(int), b.astype(int), labels=list(range(lo, hi + 1)), weights="quadratic"
            )
            stored = s.db.execute(
                "SELECT kappa_quadratic, n FROM judge_agreements WHERE run_id = ? ORDER BY created_at DESC",
                [rid],
            ).fetchone()
            assert stored[1] == len(ids) and stored[0] == pytest.approx(ref, abs=1e-9)
            assert get_health(s, rid)["kappa"] == pytest.approx(ref, abs=1e-9)
    # a labels file that names a slot the page never showed: exit 2, one line
    bad = tmp_path / "bad.jsonl"
    rec = json.loads(text.splitlines()[0]) | {"slot": 7}
    bad.write_text(json.dumps(rec) + "\n")
    r = run_cli("review", "import", str(bad), "--db", str(db))
    assert r.returncode == 2 and "bad.jsonl:1" in r.stderr
