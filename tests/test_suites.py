"""Suite files: validation with file/line/field errors, data loading, built-ins."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from suites import builtin_suites, load_suite
from tests.conftest import write_suite

QA = """name: qa
kind: task
data: data.jsonl
prompt: "Q: {{ question }}"
reference: answer
metrics:
  - exact_match
  - name: regex_match
    as: has_digit
    pattern: "[0-9]"
"""
DATA = (
    '{"id": "a", "question": "one?", "answer": "1"}\n'
    '{"id": "b", "question": "two?", "answer": ["2", "two"]}\n'
)


def test_builtin_suites_load():
    names = builtin_suites()
    assert {"finetune-qa", "heldout-text", "sentiment", "json-extract"} <= set(names)
    for name in names:
        s = load_suite(name)
        assert s.examples and s.metrics


def test_task_suite_loads_examples_and_metric_specs(tmp_path):
    s = load_suite(write_suite(tmp_path, QA, DATA))
    assert [e.id for e in s.examples] == ["a", "b"]
    assert s.examples[1].references == ["2", "two"]
    has_digit = next(m for m in s.metrics if m.name == "has_digit")
    assert has_digit.spec == {
        "name": "regex_match",
        "args": {"pattern": "[0-9]", "fullmatch": False, "ignore_case": False},
    }


@pytest.mark.parametrize(
    "yaml_text, line, field, message",
    [
        (QA.replace("prompt:", "promt:"), 4, "promt", "unknown key"),
        (
            QA.replace("  - exact_match", "  - exact_mach"),
            7,
            "metrics.0",
            "Did you mean 'exact_match'",
        ),
        (QA.replace('pattern: "[0-9]"', 'pattern: "[0-9"'), 10, "metrics.1.pattern", "pattern"),
        (
            QA.replace("    as: has_digit\n", "    as: has_digit\n    bogus: 1\n"),
            10,
            "metrics.1.bogus",
            "no option",
        ),
        (QA.replace("kind: task", "kind: tsk"), 2, "kind", "Did you mean 'task'"),
        (
            QA + "generation:\n  max_new_tokens: -3\n",
            12,
            "generation.max_new_tokens",
            "greater than",
        ),
        ("name: qa\nkind: task\n  bad: [indent\n", 3, None, "malformed YAML"),
    ],
)
def test_bad_suite_files_name_file_line_and_field(tmp_path, yaml_text, line, field, message):
    path = write_suite(tmp_path, yaml_text, DATA)
    with pytest.raises(UserError) as e:
        load_suite(path)
    assert e.value.path == str(path)
    assert e.value.line == line
    assert e.value.field == field
    assert message in str(e.value)


@pytest.mark.parametrize(
    "data, line, field, message",
    [
        (
            '{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", "question": \n',
            2,
            None,
            "not valid JSON",
        ),
        ('{"id": "a", "question": "q"}\n', 1, "answer", "lacks the reference field"),
        (
            '{"id": "a", "answer": "1"}\n',
            1,
            None,
            "lacks a field the prompt uses ('question' is undefined)",
        ),
        (
            '{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "q", "answer": "1"}\n',
            2,
            "id",
            "duplicate example id 'a'",
        ),
        ("[1, 2]\n", 1, None, "expected a JSON object"),
        ("\n\n", None, None, "dataset is empty"),
    ],
)
def test_bad_data_lines_name_line_and_field(tmp_path, data, line, field, message):
    write_suite(tmp_path, QA, data)
    with pytest.raises(UserError) as e:
        load_suite(tmp_path / "suite.yaml")
    assert e.value.path == str(tmp_path / "data.jsonl")
    assert e.value.line == line
    assert e.value.field == field
    assert message in str(e.value)


def test_missing_data_file(tmp_path):
    with pytest.raises(UserError, match="data file not found"):
        load_suite(write_suite(tmp_path, QA))


def test_unknown_suite_name():
    with pytest.raises(UserError, match="no suite file 'nope'"):
        load_suite("nope")


def test_perplexity_suite_from_txt_paragraphs(tmp_path):
    (tmp_path / "t.txt").write_text("First para\nline two.\n\nSecond para.\n\n\nThird.\n")
    s = load_suite(write_suite(tmp_path, "name: t\nkind: perplexity\ndata: t.txt\n"))
    assert [e.record["text"] for e in s.examples] == [
        "First para\nline two.",
        "Second para.",
        "Third.",
    ]
    assert [e.line for e in s.examples] == [1, 4, 7]


def test_perplexity_stride_must_fit(tmp_path):
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(UserError, match="stride must be <= max_length"):
        load_suite(
            write_suite(tmp_path, "name: t\nkind: perplexity\ndata: t.txt\nmax_length: 16\nstride: 32\n")
        )
