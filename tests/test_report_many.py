"""A report over more than two models, and report sections as registered units (#23 §3, §8).

Real stores (written through the Store API, as the runner writes them) and real headless
Chromium (tests/browser.py): every candidate's column is on the page, nothing logs an error.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from harness.store import Store
from reports import render_report, write_report
from reports.sections import SECTIONS, section, sections
from reports.sides import model_names, short_spec
from tests import report_store as rs
from tests.conftest import run_cli
from tests.test_report import assert_quiet, browser, load, set_control  # noqa: F401  (fixture)

METRICS = [("token_f1", {}, "mean", True, False), ("exact_match", {}, "mean", True, True)]


def add_model(db: Path, model_id: str, spec: str, run_id: str, answer: str, f1: float) -> dict[str, str]:
    """Another candidate with a run of suite 'qa': every answer `answer EXAMPLE_ID`, token_f1 `f1`."""
    with Store(db) as s:
        s.upsert_model(model_id, spec, "hf", model_id[-1] * 64, base_model_id="m-base")
        stored = s.db.execute(
            "SELECT example_id, input, reference FROM examples WHERE suite_id = 'qa-1' ORDER BY position"
        ).fetchall()
        qa = [(e, json.loads(i), json.loads(r)) for e, i, r in stored]
        outs = {e: f"{answer} {e}" for e, _, _ in qa}
        rs._run(s, run_id, model_id, "qa-1", qa, outs, METRICS, random.Random(1), "x")
        for metric, value in (("token_f1", f1), ("exact_match", float(f1 > 0.7))):
            s.db.execute(
                "UPDATE scores SET value = ? WHERE run_id = ? AND metric = ? AND error IS NULL",
                [value, run_id, metric],
            )
    return outs


@pytest.fixture(scope="module")
def many_db(tmp_path_factory) -> Path:
    """base, the DPO candidate, `x` (every answer scored 0) and a second model whose short name is
    also `dpo` (every answer scored 1)."""
    db = rs.make_store(tmp_path_factory.mktemp("many") / "t.duckdb", n=30)
    add_model(db, "m-x", "hf:/models/x", "r-qa-x", "model x answers", 0.0)
    add_model(db, "m-d2", "base-model?adapter=runs/dpo", "r-qa-d2", "second dpo answers", 1.0)
    return db


def test_short_names_tell_models_apart():
    assert short_spec("hf:/models/SmolLM2?dtype=float32") == "SmolLM2"
    assert short_spec("smollm2?adapter=out/dpo/") == "dpo"
    assert short_spec("openai:qwen2@http://127.0.0.1:8000/v1") == "qwen2"
    with Store(rs.make_store(Path(__import__("tempfile").mkdtemp()) / "t.duckdb", n=3, hostile=False)) as s:
        runs = [s.get_run("r-qa-base"), s.get_run("r-qa-cand"), s.get_run("r-qa-cand")]
    assert model_names(runs) == ["base-model", "dpo (m-cand)", "dpo (m-cand) #2"]


def test_report_of_four_models_keeps_viewer_and_charts(many_db, tmp_path, browser):  # noqa: F811
    out = tmp_path / "many.html"
    r = run_cli("report", "m-base", "m-cand", "m-x", "m-d2", "-o", str(out), "--db", str(many_db))
    assert r.returncode == 0, r.stderr
    html = out.read_text(encoding="utf-8")
    assert "Leaderboard: baseline vs 3 candidate(s)" in html
    assert "r-qa-x" in html  # the runs table still names each run
    labels = ["base-model", "dpo (m-cand)", "x", "dpo (m-d2)"]  # by model, told apart
    load(browser, out)
    assert_quiet(browser, out)
    head = browser.eval("[...document.querySelectorAll('#tg-scoreboard thead th')].map(h => h.textContent)")
    assert head[2] == "baseline: base-model" and head[3:6] == labels[1:]
    # every model's output (its predictions) side by side in the viewer
    card = "document.querySelector('#tg-list [data-id=q0]')"
    titles = browser.eval(f"[...{card}.querySelectorAll('.out h4')].map(h => h.textContent)")
    assert titles == [f"{label} output" for label in labels]
    assert browser.eval(f"{card}.querySelector('.out2 pre').textContent") == "model x answers q0"
    assert browser.eval(f"{card}.querySelector('.out3 pre').textContent") == "second dpo answers q0"
    with Store(many_db) as s:
        base_out = s.example_outputs("r-qa-base", ["q0"])["q0"]["output"]
        f1 = {e: v for e, v, _, err, _ in s.scores("r-qa-base", "token_f1") if err is None}
    assert browser.eval(f"{card}.querySelector('.out0 pre').textContent") == base_out
    # charts: a bar per model in each panel, a forest row per candidate, a histogram per metric
    assert browser.eval("document.querySelectorAll('#charts svg[aria-label$=\"95% CI\"]').length") == 4
    bars = browser.eval("document.querySelector('#charts svg').querySelectorAll('rect').length")
    assert bars == 4
    forest = browser.eval("document.querySelector('#charts svg[aria-label^=forest]').textContent")
    assert all(f"· {label}" in forest for label in labels[1:])
    assert browser.eval("document.querySelectorAll('#distributions svg').length") == 4
    # the filters compare with the candidate picked: x scored 0 everywhere
    options = browser.eval("[...document.querySelectorAll('#tg-metric option')].map(o => o.textContent)")
    set_control(browser, "tg-metric", str(options.index("token_f1 ↑")))
    set_control(browser, "tg-cand", "2")
    browser.eval("document.querySelector('[data-filter=regressed]').click()")
    regressed = sum(1 for v in f1.values() if v > 0)
    assert browser.eval("document.getElementById('tg-count').textContent") == f"{regressed} of 30 examples"
    set_control(browser, "tg-cand", "3")  # the model scored 1 everywhere regressed nowhere
    assert browser.eval("document.getElementById('tg-count').textContent") == "0 of 30 examples"
    assert_quiet(browser, out)


def test_two_model_report_has_no_candidate_picker(many_db, tmp_path, browser):  # noqa: F811
    out = write_report(many_db, ["m-base", "m-x"], tmp_path / "two.html")
    load(browser, out)
    assert_quiet(browser, out)
    assert browser.eval("document.getElementById('tg-cand').closest('label').hidden") is True
    assert browser.eval("document.querySelectorAll('#tg-list .ex:first-child .out').length") == 2


def test_many_models_gated_by_a_policy(many_db, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - {suite: qa, metric: token_f1, min_delta: 0.0}\n")
    with Store(many_db) as s:
        html = render_report(s, ["r-qa-base", "r-qa-cand", "r-qa-x", "r-qa-d2"], policy=policy)
    verdicts = re.findall(
        r'<h2>Gate: [^<]*· <span class="mono">([^<]+)</span></h2>\s*<div class="verdict (\w+)', html
    )
    assert [name for name, _ in verdicts] == ["dpo (m-cand)", "x", "dpo (m-d2)"]
    assert dict(verdicts)["x"] == "fail" and dict(verdicts)["dpo (m-d2)"] == "pass"
    assert "gate FAIL" in html  # the top bar: not every candidate passed


def test_a_plugin_adds_a_section(many_db, tmp_path, browser):  # noqa: F811
    template = tmp_path / "cost.html.j2"
    template.write_text(
        '<section id="cost"><h2>Cost</h2><p id="cost-n">{{ data.n }}</p>'
        '<p id="cost-name">{{ data.name }}</p><p id="cost-js"></p></section>'
    )
    script = tmp_path / "cost.js"
    script.write_text(
        "document.getElementById('cost-js').textContent = "
        "JSON.parse(document.getElementById('tg-data').textContent).cost;"
    )
    before = SECTIONS.snapshot()
    try:

        @section("cost", title="Cost", order=55, template=template, js=script)
        def cost(store, runs, ctx):
            ctx.page_data["cost"] = f"{len(runs.sides)} models"
            return {"n": sum(len(side) for side in runs.sides), "name": "<b>not markup</b>"}

        @section("nothing", title="Nothing", order=56, template=template)
        def nothing(store, runs, ctx):
            return None  # nothing to show: the section and its link are left out

        assert [s.name for s in sections()][4:7] == ["latency", "cost", "nothing"]
        out = write_report(many_db, ["m-base", "m-cand", "m-x"], tmp_path / "plugin.html")
    finally:
        SECTIONS.restore(before)
    html = out.read_text(encoding="utf-8")
    assert 'href="#cost"' in html and 'href="#nothing"' not in html
    assert "&lt;b&gt;not markup&lt;/b&gt;" in html
    load(browser, out)
    assert_quiet(browser, out)
    assert (
        browser.eval("document.getElementById('cost-n').textContent") == "5"
    )  # base: qa, zh; dpo: qa, zh; x: qa
    assert browser.eval("document.getElementById('cost-js').textContent") == "3 models"
    assert browser.eval("document.querySelectorAll('#tg-list .ex').length") > 0  # the viewer still runs
    assert "cost" not in [s.name for s in sections()]


def test_sections_are_registered_in_page_order():
    names = [s.name for s in sections()]
    assert names == [
        "overview",
        "scoreboard",
        "gate",
        "charts",
        "latency",
        "training",
        "steps",
        "distributions",
        "examples",
    ]
    assert all(s.collect is SECTIONS.get(s.name).factory for s in sections())
