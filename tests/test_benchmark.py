"""`benchmark` suites through lm-evaluation-harness on the real SmolLM2, and `import lm-eval`."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from harness.errors import UserError
from harness.lm_eval_rows import reported
from harness.results import summarize_run
from harness.runner import RunOptions, run_suite
from harness.store import Store
from suites import load_suite, suite_id
from tests.conftest import ROOT, run_cli, write_suite

TASKS = ROOT / "suites" / "lm_eval_tasks"
MINI = f"""name: mini
kind: benchmark
include_path: {TASKS}
tasks: [mini_knowledge, mini_arith, mini_prose]
limit: 4
max_length: 512
"""
EXPECTED = {  # metric -> (aggregation, higher_is_better, binary)
    "mini_knowledge/acc": ("mean", True, True),
    "mini_knowledge/acc_norm": ("mean", True, True),
    "mini_arith/exact_match/first-number": ("mean", True, True),
    "mini_prose/word_perplexity": ("perplexity", False, False),
    "mini_prose/byte_perplexity": ("perplexity", False, False),
}


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory, smollm2):
    """The three bundled tasks, 4 docs each, run once through the runner into a real store."""
    folder = tmp_path_factory.mktemp("mini")
    suite = load_suite(write_suite(folder, MINI))
    with Store(folder / "t.duckdb") as store:
        out = run_suite(store, smollm2, suite, RunOptions(batch_size=8))
        yield store, out


def _count(store, sql, *params):
    return store.db.execute(sql, list(params)).fetchone()[0]


def test_every_doc_and_metric_is_a_row(mini_run):
    store, out = mini_run
    assert (out.n_examples, out.n_new, out.n_errors) == (12, 12, 0) and out.model_calls > 0
    assert store.get_run(out.run_id).status == "completed"
    assert _count(store, "SELECT count(*) FROM run_examples WHERE run_id = ?", out.run_id) == 12
    # 4 docs x (2 + 1 + 2 metrics), none of them an error
    assert _count(store, "SELECT count(*) FROM scores WHERE run_id = ? AND error IS NULL", out.run_id) == 20
    metrics = {
        m["metric"]: (m["aggregation"], m["higher_is_better"], m["binary"])
        for m in store.run_metrics(out.run_id)
    }
    assert metrics == EXPECTED
    rows = store.db.execute(
        "SELECT re.example_id, g.request_type, g.prompt, g.output, g.result FROM run_examples re"
        " JOIN generations g USING (cache_key) WHERE re.run_id = ? ORDER BY re.example_id",
        [out.run_id],
    ).fetchall()
    by_id = {r[0]: r for r in rows}
    assert {r[1] for r in rows} == {"lm_eval"}
    knowledge = by_id["mini_knowledge/0"]
    assert knowledge[2].startswith("Question: What is the largest planet") and knowledge[3] in {
        "Jupiter",
        "Mars",
        "Venus",
        "Mercury",
    }
    assert len(json.loads(knowledge[4])["loglikelihoods"]) == 4
    arith = by_id["mini_arith/0"]
    assert arith[2].count("Question:") == 5 and arith[3] is not None  # 4 shots + the question
    assert "loglikelihood" in json.loads(by_id["mini_prose/0"][4])


def test_examples_table_holds_docs_and_references(mini_run):
    store, out = mini_run
    run = store.get_run(out.run_id)
    inp, ref = store.db.execute(
        "SELECT input, reference FROM examples WHERE suite_id = ? AND example_id = 'mini_knowledge/0'",
        [run.suite_id],
    ).fetchone()
    assert json.loads(inp)["doc"]["question"].startswith("What is the largest planet")
    assert json.loads(ref) == ["Jupiter"]
    assert _count(store, "SELECT count(*) FROM examples WHERE suite_id = ?", run.suite_id) == 12


def test_show_aggregate_equals_lm_eval_aggregate(mini_run):
    store, out = mini_run
    run, summaries = summarize_run(store, out.run_id)
    results = run.config["lm_eval"]["results"]
    specs = {m["metric"]: m["spec"]["args"] for m in store.run_metrics(out.run_id)}
    assert {m.metric for m in summaries} == set(EXPECTED)
    for m in summaries:
        value, stderr = reported(results, specs[m.metric])
        assert m.summary.n == 4
        assert abs(m.summary.value - value) <= 1e-9, m.metric
        assert stderr is not None  # lm-eval's stderr ("N/A" where it has none) is kept beside ours
    assert results["mini_knowledge"]["acc_stderr,none"] == pytest.approx(
        next(m.summary.stderr for m in summaries if m.metric == "mini_knowledge/acc"), abs=1e-12
    )


def test_resume_runs_only_the_missing_task(tmp_path, store, smollm2):
    suite = load_suite(
        write_suite(tmp_path, MINI.replace("mini_arith, ", "").replace("limit: 4", "limit: 2"))
    )
    full = run_suite(store, smollm2, suite, RunOptions())
    before = store.scores(full.run_id, "mini_prose/word_perplexity")
    for table in ("scores", "run_examples"):  # as if the run died after its first task
        store.db.execute(
            f"DELETE FROM {table} WHERE run_id = ? AND example_id LIKE 'mini_prose/%'", [full.run_id]
        )
    store.mark_run(full.run_id, "failed", "killed")
    resumed = run_suite(store, smollm2, suite, RunOptions(resume=full.run_id))
    assert (resumed.run_id, resumed.n_new, resumed.n_examples) == (full.run_id, 2, 4)
    assert 0 < resumed.model_calls < full.model_calls
    assert store.get_run(full.run_id).status == "completed"
    assert store.scores(full.run_id, "mini_prose/word_perplexity") == before


def test_import_of_lm_eval_output_matches_its_aggregates(tmp_path, smollm2):
    """`lm_eval --model hf --output_path DIR --log_samples`, done in-process the way its CLI does."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    out_dir = tmp_path / "lm_eval_out"
    tracker = EvaluationTracker(output_path=str(out_dir))
    res = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(smollm2.resolved.weights), "dtype": "float32", "max_length": 512},
        tasks=["mini_knowledge", "mini_arith", "mini_prose"],
        task_manager=TaskManager(include_path=str(TASKS), include_defaults=False),
        limit=3,
        batch_size=8,
        device="cpu",
        log_samples=True,
        evaluation_tracker=tracker,
    )
    samples = res.pop("samples")
    tracker.save_results_aggregated(results=res, samples=samples)
    for task in res["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])

    db = tmp_path / "imp.duckdb"
    r = run_cli("import", "lm-eval", str(out_dir), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    again = run_cli("import", "lm-eval", str(out_dir), "--db", str(db))
    assert again.returncode == 0 and "already imported" in again.stdout
    with Store(db) as store:
        (run_id,) = [x["run_id"] for x in store.list_runs()]
        run, summaries = summarize_run(store, run_id)
        assert run.suite_kind == "benchmark" and run.model_spec.startswith("lm-eval:")
        results = json.loads(next(out_dir.rglob("results_*.json")).read_text())["results"]
        specs = {m["metric"]: m["spec"]["args"] for m in store.run_metrics(run_id)}
        assert {m.metric for m in summaries} == set(EXPECTED)
        for m in summaries:
            value, _ = reported(results, specs[m.metric])
            assert m.summary.n == 3 and abs(m.summary.value - value) <= 1e-9, m.metric
        assert _count(store, "SELECT count(*) FROM scores WHERE run_id = ?", run_id) == 15
        ref = store.db.execute(
            "SELECT reference FROM examples WHERE example_id = 'mini_knowledge/0'"
        ).fetchone()[0]
        assert json.loads(ref) == ["Jupiter"]
    assert run_cli("show", run_id, "--db", str(db)).returncode == 0


def test_hub_task_without_cached_data_fails_fast_and_clearly(tmp_path):
    path = write_suite(tmp_path, "name: hs\nkind: benchmark\ntasks: [hellaswag]\n")
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        load_suite(path)
    assert time.perf_counter() - t0 < 20
    msg = str(e.value)
    assert "hellaswag" in msg and "not available offline" in msg and "datasets cache" in msg
    assert e.value.line == 3 and e.value.field == "tasks.0"
    r = run_cli("run", "--model", "smollm2", "--suite", str(path), "--db", str(tmp_path / "x.duckdb"))
    assert r.returncode == 2 and "not available offline" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_malformed_include_yaml_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_TRUST_CODE", "1")  # the copied mini task loads its data by !function
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "ok.yaml").write_text((TASKS / "mini_prose.yaml").read_text().replace("mini_prose", "ok_prose"))
    (tasks / "broken.yaml").write_text("task: broken\ndoc_to_text: [unclosed\noutput_type: generate_until\n")
    path = write_suite(tmp_path, "name: b\nkind: benchmark\ninclude_path: tasks\ntasks: [ok_prose]\n")
    with pytest.raises(UserError) as e:
        load_suite(path)
    assert e.value.path == str(tasks / "broken.yaml") and "malformed lm-eval task YAML" in str(e.value)
    (tasks / "broken.yaml").write_text("task: broken\nnot_a_task_key: 1\noutput_type: generate_until\n")
    path.write_text(path.read_text().replace("[ok_prose]", "[broken]"))
    with pytest.raises(UserError, match=r"lm-eval cannot load task 'broken' \(.*broken\.yaml\)"):
        load_suite(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("tasks: [mini_knowlege]", "Did you mean 'mini_knowledge'"),
        ("tasks: [mini_prose]\nmetrics: {mini_prose: [f1]}", "has no metric 'f1' (it has: byte_perplexity"),
        ("tasks: [mini_prose]\nmetrics: {arc_easy: [acc]}", "'arc_easy' is not one of this suite's tasks"),
        ("tasks: [mini_prose]\ninclude_path: nowhere", "include_path folder not found"),
    ],
)
def test_bad_benchmark_suites_are_located_errors(tmp_path, extra, message):
    text = f"name: b\nkind: benchmark\ninclude_path: {TASKS}\n{extra}\n"
    if "include_path: nowhere" in extra:
        text = text.replace(f"include_path: {TASKS}\n", "")
    with pytest.raises(UserError) as e:
        load_suite(write_suite(tmp_path, text))
    assert message in str(e.value) and e.value.line is not None


def test_metric_selection_and_unreproducible_aggregations(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "bpb.yaml").write_text(
        "task: bpb_prose\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {TASKS / 'data' / 'prose.jsonl'}}}}}\n"
        "test_split: test\noutput_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\n"
    )
    (tasks / "gen.yaml").write_text(
        "task: gen_prose\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {TASKS / 'data' / 'prose.jsonl'}}}}}\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: '{{text}}'\ndoc_to_target: '{{text}}'\n"
        "metric_list: [{metric: bleu}]\n"
    )
    base = "name: b\nkind: benchmark\ninclude_path: tasks\ntasks: [bpb_prose]\n"
    default = load_suite(write_suite(tmp_path, base))  # lm-eval's defaults include bits_per_byte (#13)
    assert [m.name for m in default.metrics] == [
        "bpb_prose/word_perplexity",
        "bpb_prose/byte_perplexity",
        "bpb_prose/bits_per_byte",
    ]
    assert default.metrics[2].aggregation == "weighted_mean" and not default.metrics[2].higher_is_better
    chosen = load_suite(write_suite(tmp_path, base + "metrics: {bpb_prose: [byte_perplexity]}\n"))
    assert [m.name for m in chosen.metrics] == ["bpb_prose/byte_perplexity"]
    gen = "name: b\nkind: benchmark\ninclude_path: tasks\ntasks: [gen_prose]\n"
    with pytest.raises(UserError, match="aggregation 'bleu', which tunegate cannot recompute"):
        load_suite(write_suite(tmp_path, gen + "metrics: {gen_prose: [bleu]}\n"))


def test_builtin_general_mini_and_its_suite_id(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_TRUST_CODE", "1")  # the copied tasks load their data by !function
    s = load_suite("general-mini")
    assert s.kind == "benchmark" and len(s.examples) == 32 + 30 + 16
    assert [m.name for m in s.metrics] == list(EXPECTED)
    # interleaved, so `tunegate run --limit N` takes a balanced first N of the suite
    first = ["mini_knowledge/0", "mini_arith/0", "mini_prose/0", "mini_knowledge/1"]
    assert [e.id for e in s.examples[:4]] == first
    assert suite_id(load_suite("general-mini")) == suite_id(s)  # stable across loads
    copy = tmp_path / "a" / "tasks"  # inside the suite's folder: a suite reads nothing outside it
    shutil.copytree(TASKS, copy)
    suite = MINI.replace(str(TASKS), str(copy))
    a = suite_id(load_suite(write_suite(tmp_path / "a", suite)))
    data = copy / "data" / "knowledge_mc.jsonl"
    data.write_text(data.read_text().replace("largest planet", "biggest planet"))
    b = suite_id(load_suite(write_suite(tmp_path / "a", suite)))
    assert a != b  # changed docs: a different suite, never mixed with old runs


def _gen_task(tasks, name: str, doc_to_text: str, extra: str = "") -> None:
    (tasks / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {TASKS / 'data' / 'prose.jsonl'}}}}}\n"
        f"test_split: test\noutput_type: generate_until\ndoc_to_text: {doc_to_text}\n"
        "doc_to_target: '{{text}}'\nmetric_list: [{metric: exact_match}]\n" + extra
    )


def test_task_yaml_templates_run_in_the_sandbox_and_functions_need_trust(tmp_path):
    """#14: an lm-eval task YAML a suite points at is untrusted input like the suite itself."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    canary = tmp_path / "pwned"
    payload = "{{ cycler.__init__.__globals__.os.popen('touch " + str(canary) + "').read() }}"
    _gen_task(tasks, "evil_prose", '"' + payload + '"')
    suite = write_suite(tmp_path, "name: b\nkind: benchmark\ninclude_path: tasks\ntasks: [evil_prose]\n")
    r = run_cli("suites", "validate", str(suite))
    assert (
        r.returncode == 2
        and "SecurityError" in r.stderr
        and "evil_prose.yaml" in r.stderr
        and "Traceback" not in r.stderr
    ), r.stderr
    assert not canary.exists()
    # ordinary lm-eval templates (filters, conditionals, loops) still render
    (tasks / "evil_prose.yaml").unlink()
    _gen_task(
        tasks,
        "fine_prose",
        '"{% if text %}{{ text | upper | truncate(40) }}{% endif %}'
        '{% for w in text.split()[:2] %} {{ w }}{% endfor %}"',
    )
    fine = load_suite(
        write_suite(tmp_path, "name: b\nkind: benchmark\ninclude_path: tasks\ntasks: [fine_prose]\n")
    )
    assert fine.examples[0].record["input"].split()[0].isupper()
    # `!function` imports Python from the task folder: refused at its line unless trusted
    (tasks / "utils.py").write_text(f"open({str(canary)!r}, 'w').close()\ndef process(ds):\n    return ds\n")
    _gen_task(tasks, "fn_prose", "'{{text}}'", "process_docs: !function utils.process\n")
    suite = write_suite(tmp_path, "name: b\nkind: benchmark\ninclude_path: tasks\ntasks: [fn_prose]\n")
    r = run_cli("suites", "validate", str(suite), env={"TUNEGATE_TRUST_CODE": ""})
    assert r.returncode == 2 and "--trust-code" in r.stderr, r.stderr
    assert "fn_prose.yaml:9 field 'process_docs'" in r.stderr
    assert not canary.exists()
    r = run_cli("--trust-code", "suites", "validate", str(suite))
    assert r.returncode == 0, r.stderr
    assert canary.exists()  # trusted: lm-eval imported the task's module, as it does on its own
