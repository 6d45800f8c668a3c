"""Gate outputs for CI: JUnit XML (one testcase per check) and a Markdown summary."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from harness.gate.evaluate import DELTA_CHECKS, CheckResult, GateResult
from harness.stats import QUANTITY


def p_cell(c: CheckResult) -> str:
    """The p-value beside a check, about the same delta the verdict is about: raw and adjusted."""
    if c.comparison is None or c.check not in DELTA_CHECKS:  # min/max/error rate: no p about them
        return "–"
    p = c.comparison.paired
    if c.p_value is not None and c.p_adjusted is not None and c.p_adjusted != c.p_value:
        return f"{p.test} p={c.p_value:.3g} (adjusted {c.p_adjusted:.3g})"
    return f"{p.test} p={p.p_value:.3g}"


def power_cell(c: CheckResult) -> str:
    if c.mde is None:
        return "–"
    n = c.comparison.paired.n if c.comparison else 0
    need = f", needs ~{c.n_needed}" if c.n_needed and n < c.n_needed <= 100 * n else ""
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
    for name, lines in result.comparability.items():  # how the runs were measured, when it matters
        for i, line in enumerate(lines):
            ET.SubElement(props, "property", name=f"measurement.{name}.{i}", value=line)
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
    return _XML_INVALID.sub("\ufffd", ET.tostring(root, encoding="unicode", xml_declaration=True)) + "\n"


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
        f"## tunegate gate {_code(result.policy)}: {verdict}",
        "",
        f"{len(result.checks) - failed}/{len(result.checks)} checks passed.{corr}",
        "",
        "| suite | baseline run | candidate run | baseline model | candidate model |",
        "|---|---|---|---|---|",
    ]
    for name, b in result.baseline.items():
        cand = result.candidate[name]
        lines.append(
            f"| {_md(name)} | {_code(b.run_id)} | {_code(cand.run_id)} | {_code(b.model_spec)} "
            f"| {_code(cand.model_spec)} |"
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
            f"| {'✅' if c.passed else '❌'} | {_md(c.suite)} | {_md(c.metric)} | {_md(c.check)} | {cells} | "
            f"{_md(c.reason)} |"
        )
    tests = dict.fromkeys(
        c.comparison.paired.test
        for c in result.checks
        if c.comparison is not None and c.check in DELTA_CHECKS
    )
    if tests:
        lines += [
            "",
            "delta = candidate − baseline, in the metric's units (a perplexity rise is a positive delta). "
            "The verdicts use the CI of the delta; the p-value beside each tests the same delta:",
        ]
        lines += [f"- {_code(t)}: {_md(QUANTITY.get(t, t))}" for t in tests]
    if result.comparability:
        lines += ["", "**How the runs were measured**", ""]
        lines += [f"- {_md(name)}: {_md(line)}" for name, ls in result.comparability.items() for line in ls]
    if result.warnings:
        lines += ["", "**Warnings**", ""] + [f"- ⚠️ {_md(w)}" for w in result.warnings]
    return "\n".join(lines) + "\n"


# Characters with a meaning in Markdown or HTML: escaped so text from suites, stores and models
# (a metric alias `<img src=…>`, a name `[x](https://…)`) is shown, never rendered as markup.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>!|&~#])")
# GitHub turns bare URLs, www. names and e-mail addresses into links: a zero-width space breaks them
_AUTOLINK = re.compile(r"(?i)(://|www\.|@)")


def _md(text: object) -> str:
    """Plain text for a Markdown table cell or list item: no markup, links or line breaks."""
    text = " ".join(str(text).split())
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _AUTOLINK.sub(lambda m: m.group(1)[0] + "\u200b" + m.group(1)[1:], text)


def _code(text: object) -> str:
    """Text as an inline code span (markup inside a code span is inert), fenced by more backticks
    than the text holds; `|` escaped for the table."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# Characters XML 1.0 cannot hold at all (ElementTree escapes markup but writes these raw)
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
