"""User templates run in Jinja's sandbox: suite files are untrusted input (a PR in CI)."""

from __future__ import annotations

import json

import pytest

from harness.errors import UserError
from suites import load_suite
from tests.conftest import run_cli, write_suite

DATA = '{"id": "a", "question": "one?", "answer": "1", "tags": ["x", "y"], "meta": {"src": "wiki"}}\n'


def _suite(prompt: str, extra: str = "") -> str:
    return (
        "name: t\nkind: task\ndata: data.jsonl\n"
        f"prompt: {json.dumps(prompt)}\n"
        "reference: answer\nmetrics: [exact_match]\n" + extra
    )


PAYLOADS = [
    "{{ cycler.__init__.__globals__.os.popen('touch CANARY').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch CANARY') }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ question.__class__.__mro__[1].__subclasses__() }}",
    "{{ meta.__class__ }}",
    "{{ tags.append('z') }}",  # the immutable sandbox refuses mutating methods
    "{{ lipsum.__globals__ }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sandbox_violations_are_located_errors_and_run_nothing(tmp_path, payload):
    path = write_suite(tmp_path, _suite("Q: {{ question }} " + payload), DATA)
    r = run_cli("suites", "validate", str(path), cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stdout + r.stderr
    assert f"{path}:4" in err and "prompt" in err and "sandbox" in err
    assert "Traceback" not in err
    assert "object" not in err.split("sandbox", 1)[0]  # no Python internals rendered anywhere
    assert not (tmp_path / "CANARY").exists()


def test_judge_question_is_sandboxed_too(tmp_path):
    text = (
        "name: j\nkind: judge\ndata: data.jsonl\nprompt: 'Q: {{ question }}'\nreference: answer\n"
        "judge:\n  type: local\n  question: \"{{ cycler.__init__.__globals__.os.popen('touch CANARY') }}\"\n"
    )
    path = write_suite(tmp_path, text, DATA)
    with pytest.raises(UserError) as e:
        load_suite(path)
    assert e.value.line == 8 and e.value.field == "judge.question" and "sandbox" in str(e.value)
    assert not (tmp_path / "CANARY").exists()


def test_ordinary_templates_still_work(tmp_path):
    prompt = (
        "{% if meta.src == 'wiki' %}[{{ meta.src | upper }}]{% endif %} "
        "{{ question.strip().upper() }} {% for t in tags %}{{ loop.index }}={{ t }};{% endfor %} "
        "{{ tags | join(',') }} {{ meta['src'] | length }} {{ '%-3s|' | format(answer) }}"
    )
    s = load_suite(write_suite(tmp_path, _suite(prompt), DATA))
    req = s.request(s.examples[0])
    assert req.messages[-1]["content"] == "[WIKI] ONE? 1=x;2=y; x,y 4 1  |"


def test_a_field_named_self_is_data_not_a_keyword(tmp_path):
    data = '{"id": "a", "self": "me", "template": "t", "answer": "1"}\n'
    # `self` is Jinja's own name; the field is reachable through `record` and never crashes
    s = load_suite(write_suite(tmp_path, _suite("{{ record['self'] }} and {{ template }}"), data))
    assert s.request(s.examples[0]).messages[-1]["content"] == "me and t"
    r = run_cli("suites", "validate", str(tmp_path / "suite.yaml"), cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    # `{{ self }}` would silently render Jinja's template reference: a located error instead
    with pytest.raises(UserError) as e:
        load_suite(write_suite(tmp_path, _suite("{{ self }}"), data))
    assert e.value.field == "prompt" and "record['self']" in str(e.value)


def test_missing_field_names_the_data_line_and_bad_expression_the_template(tmp_path):
    data = DATA + '{"id": "b", "answer": "2"}\n'
    with pytest.raises(UserError) as e:
        load_suite(write_suite(tmp_path, _suite("Q: {{ question }}"), data))
    assert e.value.path.endswith("data.jsonl") and e.value.line == 2 and "question" in str(e.value)
    with pytest.raises(UserError) as e:
        load_suite(write_suite(tmp_path, _suite("{{ answer + 1 }}"), DATA))
    assert e.value.line == 4 and e.value.field == "prompt" and "TypeError" in str(e.value)
