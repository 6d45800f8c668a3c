"""What `runs`, `show`, `compare` and `gate` print: built from the `tunegate.api` records, so the
text and `--json` always say the same thing."""

from __future__ import annotations

from typing import Any

from harness.models.spec import ENDPOINT_NOTE
from tunegate.cli.output import (
    DELTA_LEGEND,
    VERDICT_LEGEND,
    VERDICT_STYLE,
    VERDICT_SYMBOL,
    Col,
    ci,
    fit,
    is_terminal,
    num,
    print_table,
    say,
    shorten,
    signed,
)

STATUS_STYLE = {"completed": "green", "running": "yellow", "interrupted": "yellow"}
ENDPOINT_MARK = "†"


def _model(spec: str, endpoint: bool) -> str:
    return f"{spec} {ENDPOINT_MARK}" if endpoint else spec


def print_runs(rows: list[dict[str, Any]]) -> None:
    """`tunegate runs`: one line per run; a dead run's status says how to resume it."""
    dead = [r for r in rows if r["status"].startswith("dead")]
    table = [
        [
            r["run_id"],
            ("dead" if r["status"].startswith("dead") else r["status"], STATUS_STYLE.get(r["status"], "red")),
            _model(r["model"], r["endpoint"]),
            r.get("model_id") or "–",
            r["suite"],
            (r["started_at"] or "")[:16],
            f"{r['done']}/{r['n_examples']}",
            (str(r["errors"]), "red" if r["errors"] else ""),
        ]
        for r in rows
    ]
    cols = [
        Col("run"),
        Col("status"),
        Col("model", shrink=1),
        Col("model id", drop=1),
        Col("suite", shrink=1),
        Col("started"),
        Col("done", "right"),
        Col("err", "right"),
    ]
    print_table(cols, table)
    if any(r["endpoint"] for r in rows):
        say(f"{ENDPOINT_MARK} {ENDPOINT_NOTE} (pass ?revision= so its cache cannot mix two deployments)")
    for r in dead:
        say(f"{r['run_id']}: {r['status']}", "red")


def print_show(rec: dict[str, Any]) -> None:
    """`tunegate show`: the run, then one line per metric."""
    run = rec["run"]
    say(
        f"{run['run_id']}  suite {run['suite']} ({run['kind']})  status {run['status']}  "
        f"{run['done']}/{run['n_examples']} examples, {run['errors']} errors"
    )
    merged = f"  ({run['shards']} shards merged)" if run.get("shards") else ""
    say(fit(f"  model {_model(run['model'], run['endpoint'])}{merged}"))
    rows = [
        [
            m["metric"],
            str(m["n"]),
            num(m["value"]),
            ci(m["ci_low"], m["ci_high"]),
            num(m["stderr"]),
            (str(m["errors"]), "red" if m["errors"] else ""),
            "↑" if m["higher_is_better"] else "↓",
        ]
        for m in rec["metrics"]
    ]
    cols = [
        Col("metric", shrink=1),
        Col("n", "right"),
        Col("value", "right"),
        Col("95% CI"),
        Col("stderr", "right"),
        Col("err", "right"),
        Col("better"),
    ]
    print_table(cols, rows)
    if run["endpoint"]:
        say(f"{ENDPOINT_MARK} {ENDPOINT_NOTE}")
    for m in rec["metrics"]:
        if m["signature"]:  # the corpus number is only reproducible with its sacreBLEU signature
            say(f"  {m['metric']}: sacreBLEU {m['signature']}")


def print_comparability(comp: dict[str, Any] | None) -> None:
    from harness.measurement import comparability_lines

    for line in comparability_lines(comp):
        style = "bold yellow" if line.startswith("MEASURED") else ""
        say(f"  {line}", style)


def print_comparison(rec: dict[str, Any], top: int = 5) -> None:
    """`tunegate compare`: who is compared, one line per metric, the legend, the worst examples."""
    from harness.stats import QUANTITY

    a, b = rec["baseline"], rec["candidate"]
    say(f"{rec['suite']}: paired comparison of candidate against baseline", "bold")
    for side, r in (("baseline ", a), ("candidate", b)):
        say(fit(f"  {side} {r['run_id']}  {_model(r['model'], r['endpoint'])}"))
    print_comparability(rec.get("comparability"))
    rows = []
    for m in rec["metrics"]:
        v = m["verdict"]
        rows.append(
            [
                m["metric"] + (" (!)" if m.get("mismatches") else ""),
                str(m["n"]),
                num(m["baseline"]),
                num(m["candidate"]),
                signed(m["delta"]),
                ci(m["ci_low"], m["ci_high"])
                + ("" if m["ci_method"] == "bootstrap" else f" {m['ci_method']}"),
                f"{m['test']} {num(m['p_value'], 3)}",
                f"{m['wins']}/{m['losses']}/{m['ties']}",
                (VERDICT_SYMBOL[v], VERDICT_STYLE[v]),
            ]
        )
    cols = [
        Col("metric", shrink=1),
        Col("n", "right"),
        Col("base", "right"),
        Col("cand", "right"),
        Col("delta", "right"),
        Col("95% CI"),
        Col("p"),
        Col("w/l/t", "right"),
        Col(""),
    ]
    print_table(cols, rows)
    for note in (rec.get("degenerate") or {}).get("notes", []):  # beside the verdict: what it rests on
        say(f"  note: {note}", "yellow")
    say(f"  {VERDICT_LEGEND}")
    say("  w/l/t: wins/losses/ties (examples better/worse/equal in the candidate); p tests the same delta:")
    for test in dict.fromkeys(m["test"] for m in rec["metrics"] if m["n"]):
        say(f"    {test}: {QUANTITY.get(test, test)}")
    for m in rec["metrics"]:
        if m["n"] and m["p_value"] is not None and (m["verdict"] == "no_change") == (m["p_value"] < 0.05):
            say(
                fit(
                    f"  {m['metric']}: CI and p={m['p_value']:.3g} disagree at 5% "
                    "(the verdict follows the CI)"
                )
            )
        if m["signature"]:
            say(f"  {m['metric']}: sacreBLEU {m['signature']}")
        if m["only_in_baseline"] or m["only_in_candidate"]:
            say(
                f"  {m['metric']}: {m['only_in_baseline']} examples only in baseline, "
                f"{m['only_in_candidate']} only in candidate (not paired)"
            )
    if top <= 0:
        return
    for m in rec["metrics"]:
        if m["regressed"]:
            say(f"  {m['metric']}: most regressed", "bold")
        for r in m["regressed"][:top]:
            head = f"    {r['example_id']}: {num(r['baseline'])} → {num(r['candidate'])}"
            say(head + _previews(r, len(head)))


def _previews(r: dict[str, Any], used: int) -> str:
    """ref / base / cand previews: on a terminal they share what is left of the line; in a log or
    a pipe each is printed whole."""
    parts = [("ref", r["reference"]), ("base", r["baseline_output"]), ("cand", r["candidate_output"])]
    from tunegate.cli.common import console

    width = max(12, (console.width - used) // 3 - 8) if is_terminal() else None
    out = ""
    for label, v in parts:
        if isinstance(v, list):
            v = v[0] if len(v) == 1 else v
        text = repr(v) if v is not None else "–"
        out += f"  {label}={text if width is None else shorten(text, width)}"
    return out


def print_gate(rec: dict[str, Any]) -> None:
    """`tunegate gate`: one line per check, failures first, then warnings, then the verdict."""
    from harness.gate.evaluate import DELTA_CHECKS

    rows = []
    for c in rec["checks"]:
        p = "–" if c["test"] is None else f"{c['test']} p={num(c['p_value'], 3)}"
        if c["p_adjusted"] is not None and c["p_value"] is not None and c["p_adjusted"] != c["p_value"]:
            p += f" (adj {num(c['p_adjusted'], 3)})"
        power = "–" if c["mde"] is None else f"MDE {num(c['mde'], 3)}"
        if c["mde"] is not None and c["n_needed"] and c["n"] and c["n"] < c["n_needed"] <= 100 * c["n"]:
            power += f", needs ~{c['n_needed']}"
        rows.append(
            [
                ("✓ PASS", "green") if c["passed"] else ("✗ FAIL", "bold red"),
                c["suite"],
                c["metric"],
                f"{c['check']} {num(c['threshold'])}",
                signed(c["delta"]) if c["check"] in DELTA_CHECKS and c["delta"] is not None else "–",
                "–" if c["check"] in ("max_drop", "min_delta") else num(c["observed"]),
                p,
                power,
                c["reason"],
            ]
        )
    cols = [
        Col(""),
        Col("suite", shrink=2),
        Col("metric", shrink=2),
        Col("check"),
        Col("delta", "right"),
        Col("observed", "right"),
        Col("p", drop=1),
        Col("power", drop=2),
        Col("why", shrink=3, min_width=40),
    ]
    print_table(cols, rows, title=f"gate: {rec['policy']}")
    say(f"{DELTA_LEGEND}; observed: the value a min/max/rate/CI-bound check holds to its threshold")
    if rec["correction"] != "none":
        say(f"correction: {rec['correction']} over {rec['family']} tested hypotheses")
    for suite, lines in rec.get("comparability", {}).items():
        for line in lines:
            say(f"{suite}: {line}", "bold yellow" if line.startswith("MEASURED") else None)
    for w in rec["warnings"]:
        say(f"warning: {w}", "yellow")
    n, failed = len(rec["checks"]), rec["failed"]
    if rec["passed"]:
        say(f"gate passed: {n} checks", "bold green")
    else:
        say(f"gate failed: {failed} of {n} checks failed", "bold red")
