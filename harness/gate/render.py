"""Gate outputs for CI: JUnit XML (one testcase per check) and a Markdown summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.gate.evaluate import CheckResult, GateResult
from harness.stats import QUANTITY


def p_cell(c: CheckResult) -> str:
    """The p-value beside a check, about the same delta the verdict is about: raw and adjusted."""
    if c.comparison is None:
        return "–"
    p = c.comparison.paired
    if c.p_value is not None and c.p_adjusted is not None and c.p_adjusted != c.p_value:
        return f"{p.test} p={c.p_value:.3g} (adjusted {c.p_adjusted:.3g})"
    return f"{p.test} p={p.p_value:.3g}"


def power_cell(c: CheckResult) -> str:
    if c.mde is None:
        return "–"
    need = (
        f", needs ~{c.n_needed}" if c.n_needed and c.comparison and c.n_needed > c.comparison.paired.n else ""
    )
    return f"MDE {c.mde:.3g}{need}"


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
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="correction", value=result.correction)
    ET.SubElement(props, "property", name="family_size", value=str(result.family))
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{c.suite}", name=f"{c.metric} {c.check}")
        cp = ET.SubElement(case, "properties")
        if c.p_value is not None:
            ET.SubElement(cp, "property", name="p_raw", value=f"{c.p_value:.6g}")
            ET.SubElement(cp, "property", name="p_adjusted", value=f"{c.p_adjusted:.6g}")
        if c.comparison is not None:
            ET.SubElement(cp, "property", name="test", value=c.comparison.paired.test)
        if c.mde is not None:
            ET.SubElement(cp, "property", name="mde", value=f"{c.mde:.6g}")
        if c.n_needed is not None:
            ET.SubElement(cp, "property", name="n_needed", value=str(c.n_needed))
        if not len(cp):
            case.remove(cp)
        detail = f"{c.reason}\n{p_cell(c)}; {power_cell(c)}" + (
            f"\nwarning: {c.warning}" if c.warning else ""
        )
        if c.passed:
            ET.SubElement(case, "system-out").text = detail
        else:
            fail = ET.SubElement(case, "failure", message=c.reason, type=c.check)
            fail.text = f"suite {c.suite}, metric {c.metric}: {detail}"
            if c.comparison is not None:
                fail.text += (
                    f"\nbaseline {c.comparison.paired.baseline:.6g}, "
                    f"candidate {c.comparison.paired.candidate:.6g}"
                )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def markdown(result: GateResult) -> str:
    """A Markdown summary for PRs and $GITHUB_STEP_SUMMARY."""
    verdict = "✅ **PASS**" if result.passed else "❌ **FAIL**"
    failed = sum(not c.passed for c in result.checks)
    corr = (
        f" Correction: {result.correction} over {result.family} tested hypotheses (raw and adjusted p shown)."
        if result.correction != "none"
        else ""
    )
    lines = [
        f"## tunegate gate `{result.policy}`: {verdict}",
        "",
        f"{len(result.checks) - failed}/{len(result.checks)} checks passed.{corr}",
        "",
        "| suite | baseline run | candidate run | baseline model | candidate model |",
        "|---|---|---|---|---|",
    ]
    for name, b in result.baseline.items():
        cand = result.candidate[name]
        lines.append(
            f"| {name} | `{b.run_id}` | `{cand.run_id}` | `{_md(b.model_spec)}` | `{_md(cand.model_spec)}` |"
        )
    lines += [
        "",
        "| | suite | metric | check | baseline | candidate | delta (CI) | p | power | why |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(result.checks, key=lambda c: c.passed):
        if c.comparison is None:
            cells = "– | – | – | – | –"
        else:
            p = c.comparison.paired
            conf = p.detail.get("confidence", 0.95)
            cells = (
                f"{p.baseline:.4g} | {p.candidate:.4g} | {p.delta:+.4g} [{p.ci_low:.4g}, {p.ci_high:.4g}]"
                f"{'' if abs(conf - 0.95) < 1e-12 else f' ({conf:.4g})'} | {p_cell(c)} | {power_cell(c)}"
            )
        lines.append(
            f"| {'✅' if c.passed else '❌'} | {_md(c.suite)} | {_md(c.metric)} | {c.check} | {cells} | "
            f"{_md(c.reason)} |"
        )
    tests = dict.fromkeys(c.comparison.paired.test for c in result.checks if c.comparison is not None)
    if tests:
        lines += ["", "The verdicts use the CI of the delta; the p-value beside each tests the same delta:"]
        lines += [f"- `{t}`: {QUANTITY.get(t, t)}" for t in tests]
    if result.warnings:
        lines += ["", "**Warnings**", ""] + [f"- ⚠️ {_md(w)}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
