"""Gate outputs for CI: JUnit XML (one testcase per check) and a Markdown summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.gate.evaluate import GateResult


def junit_xml(result: GateResult) -> str:
    """JUnit XML: a testsuite per gate, a testcase per check, failures carry the reason."""
    failures = sum(not c.passed for c in result.checks)
    root = ET.Element("testsuites", name="tunegate", tests=str(len(result.checks)), failures=str(failures))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"tunegate gate: {result.policy}",
        tests=str(len(result.checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{c.suite}", name=f"{c.metric} {c.check}")
        if c.passed:
            ET.SubElement(case, "system-out").text = c.reason
        else:
            fail = ET.SubElement(case, "failure", message=c.reason, type=c.check)
            fail.text = (
                f"suite {c.suite}, metric {c.metric}: {c.reason}\n"
                f"baseline {c.comparison.paired.baseline:.6g}, "
                f"candidate {c.comparison.paired.candidate:.6g}"
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def markdown(result: GateResult) -> str:
    """A Markdown summary for PRs and $GITHUB_STEP_SUMMARY."""
    verdict = "✅ **PASS**" if result.passed else "❌ **FAIL**"
    failed = sum(not c.passed for c in result.checks)
    lines = [
        f"## tunegate gate `{result.policy}`: {verdict}",
        "",
        f"{len(result.checks) - failed}/{len(result.checks)} checks passed.",
        "",
        "| suite | baseline run | candidate run | baseline model | candidate model |",
        "|---|---|---|---|---|",
    ]
    for name, b in result.baseline.items():
        c = result.candidate[name]
        lines.append(
            f"| {name} | `{b.run_id}` | `{c.run_id}` | `{_md(b.model_spec)}` | `{_md(c.model_spec)}` |"
        )
    lines += [
        "",
        "| | suite | metric | check | baseline | candidate | delta (95% CI) | p | why |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(result.checks, key=lambda c: c.passed):
        p = c.comparison.paired
        lines.append(
            f"| {'✅' if c.passed else '❌'} | {_md(c.suite)} | {_md(c.metric)} | {c.check} | "
            f"{p.baseline:.4g} | {p.candidate:.4g} | {p.delta:+.4g} [{p.ci_low:.4g}, {p.ci_high:.4g}] | "
            f"{p.test} {p.p_value:.3g} | {_md(c.reason)} |"
        )
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
