"""`tunegate gate`: exit 0 when the candidate passes the policy, 1 when it fails, 2 on bad input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.markup import escape

from harness.errors import UserError
from harness.measurement import parse_allow
from tunegate.cli.common import DEFAULT_DB, AllowMismatchOption, DbOption, console, console_err

if TYPE_CHECKING:
    from harness.config import LocatedYaml
    from harness.gate import GatePolicy, GateResult
    from harness.gate.leaderboard import Candidate, Require
    from harness.store import Store


def gate_cmd(
    baseline: Annotated[list[str], typer.Option("--baseline", help="Baseline run id(s) or model.")],
    candidate: Annotated[list[str], typer.Option("--candidate", help="Candidate run id(s) or model.")],
    policy: Annotated[Path, typer.Option("--policy", help="Gate policy YAML.")],
    db: DbOption = DEFAULT_DB,
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Only gate these suites.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    summary: Annotated[Path | None, typer.Option(help="Write a Markdown summary here.")] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML report with the verdict here.")
    ] = None,
    require: Annotated[
        str,
        typer.Option(
            help="Several candidate models: pass when any of them passes, or only when all do.",
        ),
    ] = "any",
    json: Annotated[bool, typer.Option("--json", help="Print the verdict and checks as JSON.")] = False,
    allow_mismatch: AllowMismatchOption = [],  # noqa: B006 (typer reads the default; never mutated)
) -> None:
    """Gate CANDIDATE against BASELINE with POLICY, from stored runs only.

    Runs measured differently (suite data or prompt, generation parameters, metric versions,
    judge, scoring convention, tokenizer, window, few-shot) are refused, exit 2, unless the field
    is allowed with --allow-mismatch or the policy's allow_mismatch.

    Candidates of several models (or best:SUITE/METRIC from a sweep) are gated one by one
    against the same baseline, with a leaderboard; --require any|all decides the exit code."""
    from harness.gate import load_policy, run_gate

    if require not in ("any", "all"):
        raise UserError(f"--require must be any or all, not '{require}'", field="require")
    pol, doc = load_policy(policy)  # a bad policy fails before the store is opened
    from harness.store import Store

    with Store(db, must_exist=True) as store:
        from harness.gate.leaderboard import group_candidates
        from tunegate.cli.leaderboard import expand_best

        candidate = expand_best(store, candidate)
        groups = group_candidates(store, candidate)
        if len(groups) > 1:
            req = cast("Require", require)  # checked to be any or all above
            code = _gate_many(store, pol, doc, baseline, groups, suite, req, junit, summary, html)
            raise typer.Exit(code)
        result = run_gate(store, pol, doc, baseline, candidate, suite, allow=parse_allow(allow_mismatch))
        if html:
            from reports import write_report

            html = write_report(store, None, html, gate=result)
    code = report_gate(result, junit=junit, summary=summary, as_json=json)
    if html and not json:  # stdout holds only the JSON
        from tunegate.cli.report import announce

        announce(html)
    raise typer.Exit(code)


def _gate_many(
    store: Store,
    pol: GatePolicy,
    doc: LocatedYaml,
    baseline: list[str],
    groups: list[Candidate],
    suite: list[str] | None,
    require: Require,
    junit: Path | None,
    summary: Path | None,
    html: Path | None,
) -> int:
    """Each candidate gated against the baseline, then the leaderboard and the overall verdict."""
    from harness.gate import junit_xml, markdown
    from harness.gate.leaderboard import run_leaderboard, verdict
    from tunegate.cli.leaderboard import print_leaderboard

    results = run_leaderboard(store, pol, doc, baseline, groups, suite)
    for cand, result in results:
        console.rule(f"candidate {escape(cand.label)}")
        report_gate(result)
    print_leaderboard(store, baseline, groups, results)
    ok = verdict(results, require)
    n_pass = sum(r.passed for _, r in results)
    console.print(
        f"[bold {'green' if ok else 'red'}]gate {'passed' if ok else 'failed'}[/]: {n_pass} of "
        f"{len(results)} candidates passed (--require {require})",
        highlight=False,
    )
    if junit:  # one JUnit testsuite per candidate
        import xml.etree.ElementTree as ET

        root = ET.Element("testsuites", name="tunegate")
        for c, r in results:
            for ts in ET.fromstring(junit_xml(r).split("?>", 1)[1].strip()):
                ts.set("name", f"{ts.get('name')} · candidate {c.label}")
                root.append(ts)
        junit.write_text(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n", encoding="utf-8")
    if summary:
        summary.write_text(
            "".join(f"### candidate {c.label}\n\n{markdown(r)}\n" for c, r in results), encoding="utf-8"
        )
    if html:
        from reports.leaderboard import write_leaderboard
        from tunegate.cli.report import announce

        announce(write_leaderboard(store, baseline, groups, html, gates=results))
    return 0 if ok else 1


def report_gate(
    result: GateResult, *, junit: Path | None = None, summary: Path | None = None, as_json: bool = False
) -> int:
    """Print one line per check (failures first) and the verdict, or the JSON; write the CI
    artefacts; return the exit code (0 pass, 1 fail)."""
    from harness.gate import junit_xml, markdown
    from tunegate.api import gate_record
    from tunegate.cli.output import print_json
    from tunegate.cli.views import print_gate

    if as_json:
        print_json(gate_record(result))
    else:
        print_gate(gate_record(result))
    if junit:
        junit.write_text(junit_xml(result), encoding="utf-8")
    md = markdown(result)
    if summary:
        summary.write_text(md, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as f:
                f.write(md)
        except OSError as e:
            console_err.print(f"[yellow]warning[/]: cannot append to GITHUB_STEP_SUMMARY: {e}")
    return 0 if result.passed else 1
