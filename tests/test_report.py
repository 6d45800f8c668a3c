"""The HTML report, rendered from stored runs and checked in real headless Chromium.

Chromium is Debian's (scripts/setup.sh installs it with fonts-noto-cjk), driven over the
DevTools protocol (tests/browser.py). Screenshots land in $TUNEGATE_ARTIFACTS or tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.store import Store
from reports import render_report, write_report
from reports.render import embed_json
from tests import report_store as rs
from tests.browser import Chromium, chromium_available
from tests.conftest import ROOT, run_cli, write_suite

ARTIFACTS = Path(os.environ.get("TUNEGATE_ARTIFACTS") or ROOT / "tests" / "artifacts")


@pytest.fixture(scope="module")
def browser():
    if not chromium_available():
        if os.environ.get("CI"):
            pytest.fail("no /usr/bin/chromium: scripts/setup.sh installs Debian's chromium")
        pytest.skip("no /usr/bin/chromium (bash scripts/setup.sh installs it)")
    with Chromium(width=1280, height=1000) as c:
        yield c


def load(browser: Chromium, path: Path) -> None:
    """Open a report fresh and forget what earlier pages logged."""
    browser.events.clear()
    browser.open(path.resolve().as_uri())


def set_control(browser: Chromium, element_id: str, value: str, event: str = "change") -> None:
    """Set a control's value and fire the event a person's input would."""
    browser.eval(
        f"(() => {{ const e = document.getElementById({json.dumps(element_id)});"
        f" e.value = {json.dumps(value)};"
        f" e.dispatchEvent(new Event({json.dumps(event)})); }})()"
    )
    if event == "input":  # the search box is debounced
        browser.eval("new Promise(r => setTimeout(r, 400))")


def assert_quiet(browser: Chromium, path: Path) -> None:
    assert browser.problems() == []
    assert browser.requests() == [path.resolve().as_uri()], "the report fetched something"


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    return rs.make_store(tmp_path_factory.mktemp("report") / "t.duckdb", n=120)


@pytest.fixture(scope="module")
def hostile_html(hostile_db, tmp_path_factory) -> Path:
    return write_report(hostile_db, ["m-base", "m-cand"], tmp_path_factory.mktemp("html") / "report.html")


# -- real SmolLM2 runs, rendered with every model file out of reach --------------------------------
QA_YAML = """name: tiny-qa
kind: task
data: data.jsonl
prompt: "Answer in one word. {{ q }}"
reference: a
generation: {max_new_tokens: 8}
metrics: [exact_match, token_f1]
"""
QA = [("What colour is the sky?", "blue"), ("What is two plus two?", "four"),
      ("What is the capital of France?", "Paris"), ("Which animal says woof?", "dog"),
      ("What is frozen water called?", "ice"), ("中国的首都是哪里？", "北京")]  # fmt: skip


def test_report_of_real_runs_renders_from_the_store_alone(tmp_path, smollm2, browser):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.models import resolve_model
    from harness.models.hf import HFModel
    from harness.runner import RunOptions, run_suite
    from suites import load_suite

    data = "".join(
        json.dumps({"id": f"q{i}", "q": q, "a": a}, ensure_ascii=False) + "\n" for i, (q, a) in enumerate(QA)
    )
    suite = load_suite(write_suite(tmp_path / "qa", QA_YAML, data))
    texts = [
        "The cat sat on the mat.",
        "Fine-tuning changes the weights a little.",
        "模型在测试集上的困惑度。",
    ]
    ppl_suite = load_suite(
        write_suite(
            tmp_path / "ppl",
            "name: tiny-text\nkind: perplexity\ndata: data.jsonl\ntext_field: text\nmax_length: 64\n",
            "".join(
                json.dumps({"id": f"t{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)
            ),
        )
    )
    torch.manual_seed(0)  # a random (non-zero) LoRA: a real candidate with real lineage and other outputs
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(smollm2.resolved.weights),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    cand = resolve_model(f"hf:{smollm2.resolved.weights}?adapter={adapter}")
    db = tmp_path / "real.duckdb"
    with Store(db) as store:
        base_run = run_suite(store, smollm2, suite, RunOptions(limit=5, batch_size=5))
        cand_model = HFModel(cand)
        cand_run = run_suite(store, cand_model, suite, RunOptions(limit=5, batch_size=5))
        for backend in (smollm2, cand_model):
            run_suite(store, backend, ppl_suite, RunOptions())

    shutil.rmtree(adapter)  # no adapter, and an empty model cache: nothing could be loaded
    empty_cache = tmp_path / "empty-cache"
    empty_cache.mkdir()
    out = tmp_path / "real.html"
    env = {"TUNEGATE_CACHE_DIR": str(empty_cache)}
    # `tunegate report MODEL MODEL` through the CLI's own entry point, then which libraries it loaded
    args = ["tunegate", "report", smollm2.resolved.spec.raw, cand.spec.raw, "-o", str(out), "--db", str(db)]
    probe = (
        f"import sys; from tunegate.cli import main; sys.argv = {args!r}; main(); "
        "print('loaded:', sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200", **env}, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "report written" in r.stdout
    assert "loaded: []" in r.stdout, "rendering a report must not import a model library"
    assert list(empty_cache.iterdir()) == []

    load(browser, out)
    assert_quiet(browser, out)
    with Store(db) as store:  # one scoreboard row, score panel and histogram per stored metric
        n_metrics = store.db.execute(
            "SELECT count(*) FROM run_metrics WHERE run_id IN (SELECT run_id FROM runs WHERE model_id = ?)",
            [cand.model_id],
        ).fetchone()[0]
    assert n_metrics >= 3
    assert browser.eval("document.querySelectorAll('#tg-scoreboard tbody tr').length") == n_metrics
    assert browser.eval("document.querySelectorAll('#charts svg').length") == n_metrics + 1  # + forest
    assert browser.eval("document.querySelectorAll('#distributions svg').length") == n_metrics
    assert "perplexity ↓" in browser.eval("document.querySelector('#tg-scoreboard').textContent")
    assert browser.eval("document.querySelectorAll('#tg-list .ex').length") == 5
    with Store(db) as store:
        outputs = store.example_outputs(cand_run.run_id, ["q0"])
    cand_text = browser.eval("document.querySelector('[data-id=q0] .out1 pre').textContent")
    assert cand_text == outputs["q0"]["output"]
    overview = browser.eval("document.querySelector('#overview').textContent")
    assert cand.spec.raw in overview and base_run.run_id in overview and cand_run.run_id in overview
    set_control(browser, "tg-suite", "1")  # the perplexity suite: its texts, no outputs
    assert browser.eval("document.getElementById('tg-count').textContent") == "3 of 3 examples"
    assert browser.eval("document.querySelectorAll('#tg-list .out0 pre').length") == 0
    assert browser.eval("document.querySelector('[data-id=t2] .prompt pre').textContent") == texts[2]
    set_control(browser, "tg-suite", "0")
    browser.screenshot(ARTIFACTS / "report-smollm2.png")


# -- scoreboard, lineage, training charts ----------------------------------------------------------
def test_scoreboard_lineage_and_training_charts(hostile_html, browser):
    load(browser, hostile_html)
    assert_quiet(browser, hostile_html)
    rows = browser.eval(
        "[...document.querySelectorAll('#tg-scoreboard tbody tr')].map(r => r.dataset.verdict)"
    )
    assert len(rows) == 4 and set(rows) <= {"better", "worse", "ns"}
    overview = browser.eval("document.querySelector('#overview').textContent")
    for text in ("SFT · QLoRA r=8 α=16", "DPO · LoRA r=8 α=16", "dddddddddddddddd", "ci-box", "abc1234def",
                 "torch 2.13.0", "base-model?adapter=out/dpo"):  # fmt: skip
        assert text in overview, text
    titles = browser.eval(
        "[...document.querySelectorAll('#training svg')].map(s => s.getAttribute('aria-label'))"
    )
    assert "loss" in titles and "DPO reward margin" in titles
    assert browser.eval("document.querySelectorAll('#charts svg[aria-label$=\"95% CI\"]').length") == 4
    assert browser.eval(
        "!!document.querySelector('#charts svg[aria-label=\"forest plot of paired deltas\"]')"
    )
    browser.screenshot(ARTIFACTS / "report-overview.png")


def test_gate_verdict_per_rule_in_report(hostile_db, tmp_path, browser):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "name: demo\nrules:\n  - {suite: qa, metric: token_f1, min_delta: 0.02}\n"
        "  - {suite: '*', metric: '*', max_error_rate: 0.0}\n"
    )
    out = tmp_path / "gate.html"
    r = run_cli("gate", "--baseline", "m-base", "--candidate", "m-cand", "--policy", str(policy),
                "--db", str(hostile_db), "--html", str(out))  # fmt: skip
    assert r.returncode == 1, r.stderr  # q3 errored on the candidate: max_error_rate fails
    load(browser, out)
    assert_quiet(browser, out)
    assert browser.eval("document.querySelector('#gate .verdict').textContent").startswith("FAIL")
    badges = browser.eval(
        "[...document.querySelectorAll('#tg-scoreboard tbody tr')].map(r => r.cells[8].textContent.trim())"
    )
    assert any("✗ max_error_rate" in b for b in badges) and any("✓ min_delta" in b for b in badges)


# -- the viewer: filters, search, sorting, pages ---------------------------------------------------
def test_filters_search_sort_and_pages(hostile_db, hostile_html, browser):
    with Store(hostile_db) as s:
        f1 = {
            run: dict(
                s.db.execute(
                    "SELECT example_id, value FROM scores WHERE run_id = ? AND metric = 'token_f1'"
                    " AND value IS NOT NULL",
                    [run],
                ).fetchall()
            )  # fmt: skip
            for run in ("r-qa-base", "r-qa-cand")
        }
    both = f1["r-qa-base"].keys() & f1["r-qa-cand"].keys()
    regressed = {e for e in both if f1["r-qa-cand"][e] < f1["r-qa-base"][e]}
    improved = {e for e in both if f1["r-qa-cand"][e] > f1["r-qa-base"][e]}

    load(browser, hostile_html)
    count = "document.getElementById('tg-count').textContent"
    assert browser.eval(count) == "120 of 120 examples"
    assert browser.eval("document.getElementById('tg-page').textContent") == "page 1 of 3"
    browser.eval("document.getElementById('tg-next').click()")
    assert browser.eval("document.getElementById('tg-page').textContent") == "page 2 of 3"
    assert browser.eval("document.querySelector('#tg-list .ex').dataset.id") == "q50"

    set_control(browser, "tg-metric", "1")
    assert browser.eval("document.getElementById('tg-metric').selectedOptions[0].textContent") == "token_f1 ↑"
    browser.eval("document.querySelector('[data-filter=regressed]').click()")
    assert browser.eval(count) == f"{len(regressed)} of 120 examples"
    shown = browser.eval("[...document.querySelectorAll('#tg-list .ex')].map(e => e.dataset.id)")
    assert set(shown) <= regressed and len(shown) == min(50, len(regressed))
    browser.eval("document.querySelector('[data-filter=improved]').click()")
    assert browser.eval(count) == f"{len(improved)} of 120 examples"
    browser.eval("document.querySelector('[data-filter=errors]').click()")
    assert browser.eval("[...document.querySelectorAll('#tg-list .ex')].map(e => e.dataset.id)") == ["q3"]
    assert "CUDA out of memory <b>boom</b>" in browser.eval(
        "document.querySelector('[data-id=q3] .err').textContent"
    )

    browser.eval("document.querySelector('[data-filter=all]').click()")
    set_control(browser, "tg-sort", "worst")
    worst = min(both, key=lambda e: (f1["r-qa-cand"][e] - f1["r-qa-base"][e], int(e[1:])))
    assert browser.eval("document.querySelector('#tg-list .ex').dataset.id") == worst

    needle = "onerror"  # only q1 (prompt, reference and outputs hold the payloads) matches
    set_control(browser, "tg-search", needle, "input")
    assert browser.eval(count) == "1 of 120 examples"
    assert browser.eval("document.querySelector('#tg-list .ex').dataset.id") == "q1"
    # word-level diff: base-only words are marked in the base output, new words in the candidate's
    set_control(browser, "tg-search", "", "input")
    assert browser.eval("document.querySelectorAll('#tg-list .out1 .ins').length") > 0
    assert browser.eval("document.querySelectorAll('#tg-list .out0 .del').length") > 0
    assert_quiet(browser, hostile_html)
    browser.screenshot(ARTIFACTS / "report-viewer.png", full_page=False)


# -- safety --------------------------------------------------------------------------------------
def test_xss_payloads_render_as_text_and_never_run(hostile_html, tmp_path, browser):
    html = hostile_html.read_text(encoding="utf-8")
    for payload in (rs.XSS_IMG, rs.XSS_SCRIPT, rs.XSS_CLOSE, "<i>base</i>"):
        assert payload not in html
    assert html.count("<script") == 2  # the JSON data block and our own viewer
    # The escaping must hold without the CSP too: check a copy with the policy removed.
    no_csp = tmp_path / "no-csp.html"
    no_csp.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html), encoding="utf-8")
    for page in (hostile_html, no_csp):
        load(browser, page)
        browser.eval("new Promise(r => setTimeout(r, 300))")  # give an onerror time to fire
        assert browser.eval("typeof window.__xss") == "undefined"
        assert_quiet(browser, page)
        assert browser.eval("document.querySelectorAll('script').length") == 2
        assert browser.eval("document.querySelectorAll('img').length") == 0
        card = "document.querySelector('[data-id=q1]')"
        assert (
            browser.eval(f"{card}.querySelector('.out0 pre').textContent") == f"{rs.XSS_IMG} {rs.XSS_CLOSE}"
        )
        assert (
            browser.eval(f"{card}.querySelector('.out1 pre').textContent")
            == f"{rs.XSS_SCRIPT} {rs.XSS_CLOSE}"
        )
        assert browser.eval(f"{card}.querySelector('.ref pre').textContent") == rs.XSS_IMG
        assert rs.XSS_SCRIPT in browser.eval(f"{card}.querySelector('.prompt pre').textContent")
        notes = browser.eval(
            "[...document.querySelectorAll('[data-id=q0] .notes p')].map(p => p.textContent)"
        )
        assert notes[0].startswith(
            "exact_match, token_f1 · base rationale: judge says: <i>base</i> answer q0"
        )
        assert len(notes) == 2  # one rationale per side, not one per metric
        assert browser.eval(f"{card}.innerText").count("window.__xss=1") >= 4  # visible, as text
    browser.eval("document.querySelector('[data-id=q1]').scrollIntoView()")
    browser.screenshot(ARTIFACTS / "report-xss.png", full_page=False)


def test_embedded_json_cannot_close_its_script_element():
    text = embed_json({"x": "</script><!-- <script>alert(1)</script> & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"x": "</script><!-- <script>alert(1)</script> & \u2028"}


def test_hostile_suite_and_metric_names_are_escaped_in_charts_and_tables(tmp_path):
    from harness.store import ScoreRow

    evil = "<svg onload=alert(1)>"
    with Store(tmp_path / "e.duckdb") as s:
        s.upsert_model("m-a", evil, "hf", "a" * 64)
        s.upsert_suite("s-1", evil, "task", "h", "x.yaml", {}, [("e0", {}, ["r"]), ("e1", {}, ["r"])])
        s.create_run("r-1", "m-a", "s-1", config={}, seed=0, versions={}, git_sha=None, host=evil,
                     n_examples=2, metrics=[(evil, {}, "mean", True, False)])  # fmt: skip
        s.write_batch("r-1", [], [("e0", None, False, None), ("e1", None, False, None)],
                      [ScoreRow("e0", evil, 0.5), ScoreRow("e1", evil, 1.0)])  # fmt: skip
        s.mark_run("r-1", "completed")
        html = render_report(s, ["r-1"])
    assert evil not in html
    assert "&lt;svg onload=alert(1)&gt;" in html


# -- Chinese, end to end -------------------------------------------------------------------------
def test_chinese_output_round_trips_into_the_dom(hostile_html, browser):
    assert "首都" in hostile_html.read_text(encoding="utf-8")  # UTF-8 on disk, not \u escapes
    load(browser, hostile_html)
    set_control(browser, "tg-suite", "1")
    assert browser.eval("document.getElementById('tg-count').textContent") == "2 of 2 examples"
    assert browser.eval("document.querySelector('[data-id=z0] .out1 pre').textContent") == rs.CHINESE
    assert "Question: 中国的首都是哪里？" in browser.eval(
        "document.querySelector('[data-id=z0] .prompt pre').textContent"
    )
    # the diff splits CJK per character: "首都是上海。" keeps 首都。 (the candidate's order), drops 是上海
    dropped = "[...document.querySelectorAll('[data-id=z0] .out0 .del')].map(e => e.textContent).join('')"
    assert browser.eval(dropped) == "是上海"
    assert_quiet(browser, hostile_html)
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    assert "Noto Sans CJK" in fonts, "fonts-noto-cjk is missing: Chinese would render as boxes"
    browser.eval("document.querySelector('[data-id=z0]').scrollIntoView()")
    browser.screenshot(ARTIFACTS / "report-chinese.png", full_page=False)


# -- one model, the CLI and bad input ------------------------------------------------------------
def test_single_run_report(hostile_db, tmp_path, browser):
    out = tmp_path / "one.html"
    r = run_cli("report", "r-qa-base", "-o", str(out), "--db", str(hostile_db))
    assert r.returncode == 0, r.stderr
    load(browser, out)
    assert_quiet(browser, out)
    assert browser.eval("document.querySelectorAll('#tg-list .ex').length") == 50
    assert browser.eval("document.querySelector('[data-filter=regressed]').hidden") is True
    assert browser.eval("document.querySelectorAll('#tg-list .out1').length") == 0


def test_compare_html(hostile_db, tmp_path):
    out = tmp_path / "cmp.html"
    r = run_cli("compare", "r-qa-b", "r-qa-c", "--db", str(hostile_db), "--html", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text(encoding="utf-8")
    assert "r-qa-base" in html and "r-qa-cand" in html and 'id="tg-data"' in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["r-nope"], "unknown run id 'r-nope'"),
        (["no-such-model"], "is neither a run id nor a stored model"),
        (["r-qa-base", "r-qa-cand", "--policy", "{policy}"], None),
        (["r-qa-base", "--policy", "{policy}"], "a gate policy needs a base and a candidate"),
        ([], "Missing argument"),
    ],
)
def test_bad_input_exits_2(hostile_db, tmp_path, args, message):
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - {suite: qa, metric: token_f1, min_delta: 0.0}\n")
    out = tmp_path / "r.html"
    args = [a.replace("{policy}", str(policy)) for a in args]
    r = run_cli("report", *args, "-o", str(out), "--db", str(hostile_db))
    if message is None:  # the good case among the bad: a policy on two runs
        assert r.returncode == 0, r.stderr
        assert "Gate: " in out.read_text(encoding="utf-8")
        return
    assert r.returncode == 2
    assert message in r.stderr
    assert not out.exists()


def test_three_models_give_the_leaderboard_and_a_lonely_model_is_a_user_error(hostile_db, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(hostile_db, db)
    with Store(db) as s:
        s.db.execute("UPDATE runs SET model_id = 'm-sft' WHERE run_id = 'r-zh-cand'")
        html = render_report(s, ["r-qa-base", "r-qa-cand", "r-zh-cand"])
        assert "leaderboard" in html.lower() and "m-sft" in html and "m-cand" in html
        s.upsert_model("m-lonely", "lonely", "hf", "l" * 64)
        with pytest.raises(UserError, match="has no completed runs"):
            render_report(s, ["lonely"])


def test_suite_run_on_one_side_only_keeps_base_and_candidate_slots(hostile_db):
    with Store(hostile_db) as s:
        html = render_report(s, ["r-qa-base", "r-zh-cand", "r-qa-cand"])
    assert "suite &#39;zh&#39; was run only for the candidate" in html
    data = json.loads(
        re.search(r'<script type="application/json" id="tg-data">(.*?)</script>', html, re.S)[1]
    )
    zh = next(x for x in data["suites"] if x["name"] == "zh")
    z0 = zh["examples"][0]
    assert z0[3] is None and z0[4] == rs.CHINESE  # base output slot empty, candidate's in its own slot
    assert z0[7] is None and z0[8] is not None
