"""Many adapters on one base load, "did the adapter really apply", chat templates, leaderboards (#17).

Real SmolLM2 on CPU and real peft adapters (tests/candidates_fixtures.py): two trained by
tunegate for 2 steps with different seeds, a no-op (lora_B = 0), one for another base, one saved
by plain peft with its own chat template.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

import suites  # noqa: F401  (registers the suite loader harness.evaluate uses)
from tests.conftest import run_cli, table_dump


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scores(db, run_id):
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT s.example_id, s.metric, s.value, g.output FROM scores s JOIN run_examples re"
            " ON re.run_id = s.run_id AND re.example_id = s.example_id JOIN generations g"
            " ON g.cache_key = re.cache_key WHERE s.run_id = ? ORDER BY 1, 2",
            [run_id],
        ).fetchall()
        return {(e, m): (v, o) for e, m, v, o in rows}
    finally:
        con.close()


@pytest.fixture(scope="module")
def many(candidate_adapters, tmp_path_factory):
    """Base + the two trained adapters in one call (counting base weight loads)."""
    import transformers

    from harness.evaluate import Models, evaluate
    from harness.runner import RunOptions

    ad = candidate_adapters
    db = tmp_path_factory.mktemp("many") / "many.duckdb"
    loads = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def counting(cls, *a, **kw):
        loads.append(a[0] if a else kw)
        return real(cls, *a, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(counting))
    try:
        results = evaluate(
            Models("smollm2", (str(ad.a), str(ad.b))), [str(ad.suite)], db, RunOptions(batch_size=4)
        )
        views = [v for v, _ in results]
    finally:
        mp.undo()
    return ad, db, views, results, loads


def test_one_base_load_many_runs_each_equal_to_a_single_adapter_run(many, tmp_path):
    from harness.models import resolve_model
    from harness.models.hf import HFModel
    from harness.runner import RunOptions, run_suite
    from harness.store import Store
    from suites import load_suite

    ad, db, views, results, loads = many
    assert len(loads) == 1, loads  # one base load for base + 2 adapters
    assert [v.info.role for v in views] == ["base", "adapter", "adapter"]
    ids = [v.resolved.model_id for v in views]
    assert len(set(ids)) == 3 and views[0].resolved.model_id == resolve_model("smollm2").model_id
    for v, _ in results[1:]:
        c = v.info.check
        assert c.max_abs_dlogit > 1e-3 and not c.noop and c.name_match
        assert c.target_modules and set(c.target_modules) == {"q_proj", "v_proj"}
    # the three candidates' generations went through the model together (mixed-adapter batches),
    # and each run still counts them as its own new generations, not cache hits
    for v, outs in results:
        assert v.info.extra["mixed_batches"] == {"candidates": 3, "batches": 1}  # 4 questions, -b 4
        assert outs[0].n_new == 4 and outs[0].n_cached == 0 and outs[0].model_calls == 1
    # each adapter's stored numbers equal a separate single-adapter HFModel run (its own load)
    suite = load_suite(ad.suite)
    for (v, outs), spec in zip(results, ["smollm2", f"smollm2?adapter={ad.a}", f"smollm2?adapter={ad.b}"]):
        single = HFModel(resolve_model(spec))
        assert single.resolved.fingerprint == v.resolved.fingerprint
        with Store(tmp_path / f"single-{v.resolved.model_id}.duckdb") as s:
            o = run_suite(s, single, suite, RunOptions(batch_size=4))
        mine, theirs = _scores(db, outs[0].run_id), _scores(s.path, o.run_id)
        assert mine.keys() == theirs.keys() and len(mine) == 8
        for k in mine:
            assert mine[k][1] == theirs[k][1], k
            assert abs((mine[k][0] or 0) - (theirs[k][0] or 0)) <= 1e-6
    outputs = [{k: o for k, (_, o) in _scores(db, outs[0].run_id).items()} for _, outs in results]
    assert outputs[0] != outputs[1] or outputs[0] != outputs[2]  # the adapters really answer differently
    # the check and the template are stored with each run
    with Store(db) as s:
        run = s.get_run(results[1][1][0].run_id)
    cand = run.config["backend"]["candidate"]
    assert cand["adapter_check"]["max_abs_dlogit"] == pytest.approx(results[1][0].info.check.max_abs_dlogit)
    assert (
        cand["chat_template"]["match"] is True and cand["chat_template"]["trained_source"] == "tunegate.json"
    )


def test_training_records_the_chat_template_and_format(candidate_adapters):
    from harness.models import resolve_model
    from harness.models.chat_template import template_sha
    from harness.models.hf import HFModel
    from harness.store import Store

    meta = json.loads((candidate_adapters.a / "tunegate.json").read_text())
    tok = HFModel(resolve_model("smollm2")).tokenizer
    assert meta["chat_template"]["text"] == tok.chat_template
    assert meta["chat_template"]["sha256"] == template_sha(tok.chat_template)
    assert meta["data_format"] == "messages" and meta["loss_on"] == "assistant"
    with Store(candidate_adapters.db) as s:
        ds = s.db.execute(
            "SELECT dataset FROM training_runs WHERE training_run_id = ?", [meta["training_run_id"]]
        ).fetchone()[0]
    assert json.loads(ds)["chat_template_sha256"] == template_sha(tok.chat_template)


def test_noop_and_mismatched_adapters_are_refused_and_nothing_is_stored(candidate_adapters, tmp_path):
    ad = candidate_adapters
    db = tmp_path / "refused.duckdb"
    run_cli("run", "-m", "smollm2", "-s", str(ad.suite), "--db", str(db), "--limit", "1", "--no-progress")
    before = table_dump(db)
    r = run_cli(
        "run",
        "-m",
        "smollm2",
        "--adapter",
        str(ad.a),
        "--adapter",
        str(ad.noop),
        "-s",
        str(ad.suite),
        "--db",
        str(db),
        "--no-progress",
    )
    assert r.returncode == 2, r.stderr
    assert (
        "does not change the base: max |Δlogit| 0" in r.stderr and "lora_B weights are all zero" in r.stderr
    )
    assert "--allow-noop-adapter" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("run", "-m", "smollm2", "--adapter", str(ad.wrong), "-s", str(ad.suite), "--db", str(db))
    assert r.returncode == 2, r.stderr
    msg = " ".join(r.stderr.split())
    assert "tiny-llama-64" in msg and "hidden size 576" in msg and "made for hidden size 64" in msg, msg
    assert table_dump(db) == before


def test_allowed_noop_is_evaluated_and_its_measured_value_stored(candidate_adapters, tmp_path):
    from harness.evaluate import Models, evaluate
    from harness.runner import RunOptions
    from harness.store import Store

    ad = candidate_adapters
    models = Models("smollm2", (str(ad.noop),), include_base=False, allow_noop=True)
    [(v, [o])] = evaluate(models, [str(ad.suite)], tmp_path / "n.duckdb", RunOptions(limit=1))
    with Store(tmp_path / "n.duckdb") as s:
        chk = s.get_run(o.run_id).config["backend"]["candidate"]["adapter_check"]
    assert chk["noop"] is True and chk["allowed_noop"] is True and chk["max_abs_dlogit"] == 0.0


def test_external_adapter_uses_its_own_template(candidate_adapters, tmp_path):
    import duckdb

    from harness.evaluate import evaluate_runs as evaluate
    from harness.runner import RunOptions

    ad = candidate_adapters
    db = tmp_path / "ext.duckdb"
    [o] = evaluate(f"smollm2?adapter={ad.external}", [str(ad.suite)], db, RunOptions(limit=2))
    con = duckdb.connect(str(db), read_only=True)
    prompts = [
        r[0]
        for r in con.execute(
            "SELECT g.prompt FROM run_examples re JOIN generations g USING (cache_key) WHERE re.run_id = ?",
            [o.run_id],
        ).fetchall()
    ]
    cfg = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?", [o.run_id]).fetchone()[0])
    con.close()
    assert prompts and all(
        p.startswith("<<user>> What colour") and p.endswith("<<assistant>> ") for p in prompts
    )
    tpl = cfg["backend"]["candidate"]["chat_template"]
    assert (
        tpl["source"] == "adapter folder"
        and tpl["trained_source"] == "adapter folder"
        and tpl["match"] is True
    )


POLICY = """
name: t
rules:
  - {suite: "*", metric: "*", max_error_rate: 0.0}
  - {suite: "*", template_match: required}
"""


def test_template_mismatch_is_loud_and_gateable_and_the_trained_one_can_be_picked(many, tmp_path):
    ad, db, views, results, _ = many
    from harness.evaluate import Models, evaluate
    from harness.runner import RunOptions

    # an adapter trained with another template (its record says so) evaluated with the base's
    moved = tmp_path / "other-template"
    shutil.copytree(ad.a, moved)
    meta = json.loads((moved / "tunegate.json").read_text())
    meta["chat_template"] = {
        "text": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}",
        "sha256": "x",
    }
    (moved / "tunegate.json").write_text(json.dumps(meta))
    qa = [str(ad.suite)]
    [(v, [bad])] = evaluate(
        Models("smollm2", (str(moved),), include_base=False),
        qa,
        db,
        RunOptions(),
    )
    assert v.info.template.match is False
    [(v2, [good])] = evaluate(
        Models(f"smollm2?chat_template=trained&adapter={moved}", include_base=False),
        qa,
        db,
        RunOptions(),
    )
    assert v2.info.template.match is True and v2.resolved.model_id != v.resolved.model_id
    # a folder that ships its own template, forced onto the base's: a different model id, a mismatch
    [(v3, [forced])] = evaluate(
        Models(f"smollm2?chat_template=base&adapter={ad.external}", include_base=False),
        qa,
        db,
        RunOptions(),
    )
    assert v3.info.template.match is False and v3.info.template.source == "option base"
    from harness.store import Store

    # the suite picks the trained template: the same adapter now matches, on the same model id
    picked = ad.suite.with_name("qa-trained.yaml")
    picked.write_text(ad.suite.read_text() + "chat_template: trained\n")
    [(v4, [by_suite])] = evaluate(
        Models("smollm2", (str(moved),), include_base=False),
        [str(picked)],
        db,
        RunOptions(),
    )
    assert v4.info.template.match is True and v4.info.template.source == "suite trained"
    assert v4.resolved.model_id == v.resolved.model_id and v4.info.used_templates == [v4.info.template]
    with Store(db) as s:
        stored = s.get_run(by_suite.run_id).config["backend"]["candidate"]["chat_template"]
        assert stored["match"] is True and stored["source"] == "suite trained"
        # what was sent is the trained template's rendering, not the base's
        prompt = s.db.execute(
            "SELECT g.prompt FROM run_examples e JOIN generations g USING (cache_key) "
            "WHERE e.run_id = ? LIMIT 1",
            [by_suite.run_id],
        ).fetchone()[0]
    assert "[assistant] " in prompt and "<|im_start|>" not in prompt
    # a model spec's choice wins over the suite's
    [(v5, _)] = evaluate(
        Models(f"smollm2?chat_template=base&adapter={moved}", include_base=False),
        [str(picked)],
        db,
        RunOptions(),
    )
    assert v5.info.template.match is False and v5.info.template.source == "option base"
    missing = ad.suite.with_name("qa-missing.yaml")
    missing.write_text(ad.suite.read_text() + "chat_template: no-such.jinja\n")
    r = run_cli("run", "-m", "smollm2", "-s", str(missing), "--db", str(tmp_path / "x.duckdb"))
    assert r.returncode == 2 and "chat_template" in r.stderr and "no-such.jinja" in r.stderr, r.stderr
    assert not (tmp_path / "x.duckdb").exists()
    policy = tmp_path / "p.yaml"
    policy.write_text(textwrap.dedent(POLICY))
    base_run = results[0][1][0].run_id
    r = run_cli(
        "gate", "--baseline", base_run, "--candidate", bad.run_id, "--policy", str(policy), "--db", str(db)
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "template_match" in r.stdout and "different chat template" in " ".join(r.stdout.split())
    r = run_cli(
        "gate", "--baseline", base_run, "--candidate", good.run_id, "--policy", str(policy), "--db", str(db)
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # leaderboard: three candidates, one fails the template rule
    cands = [results[1][1][0].run_id, results[2][1][0].run_id, forced.run_id]
    args = ["gate", "--baseline", base_run, "--policy", str(policy), "--db", str(db)]
    args += [x for c in cands for x in ("--candidate", c)]
    r_any = run_cli(*args, "--junit", str(tmp_path / "j.xml"), "--html", str(tmp_path / "lb.html"))
    assert r_any.returncode == 0, r_any.stdout + r_any.stderr
    assert "2 of 3 candidates passed (--require any)" in " ".join(r_any.stdout.split())
    r_all = run_cli(*args, "--require", "all")
    assert r_all.returncode == 1 and "2 of 3 candidates passed (--require all)" in " ".join(
        r_all.stdout.split()
    )
    import xml.etree.ElementTree as ET

    suites_xml = ET.parse(tmp_path / "j.xml").getroot().findall("testsuite")
    assert len(suites_xml) == 3 and [int(s.get("failures")) > 0 for s in suites_xml] == [False, False, True]
    html = (tmp_path / "lb.html").read_text()
    assert html.count("adapter applies: max |Δlogit|") == 3 and "chat template ≠ training" in html
    r = run_cli("compare", base_run, *cands, "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "leaderboard" in r.stdout and all(c in r.stdout for c in cands)
    r = run_cli("report", base_run, *cands, "--db", str(db), "-o", str(tmp_path / "r.html"))
    assert (
        r.returncode == 0 and "Leaderboard: baseline vs 3 candidate(s)" in (tmp_path / "r.html").read_text()
    )
    r = run_cli(
        "gate",
        "--baseline",
        base_run,
        "--candidate",
        cands[0],
        "--policy",
        str(policy),
        "--db",
        str(db),
        "--require",
        "some",
    )
    assert r.returncode == 2 and "--require must be any or all" in r.stderr
