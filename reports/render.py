"""Turn collected report data into one self-contained HTML page (Jinja2, inline CSS/JS/SVG)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from harness.secrets import scrub
from harness.store import Store
from reports import collect as c
from reports.sections import Section, SectionContext, sections
from reports.sides import ReportRuns

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ value }} is HTML-escaped unless it is our own Markup (SVG)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def embed_json(data: Any) -> str:
    """JSON that is inert inside <script type="application/json">.

    '<' only ever occurs inside JSON strings, where \\u003c means the same character, so no
    '</script>' or '<!--' can end or confuse the script element whatever a model wrote.
    """
    text = scrub(json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(store: Store, runs: ReportRuns, store_path: str) -> str:
    """The page: every registered section that has something to show, in order."""
    ctx = SectionContext(store_path)
    shown = []
    for sec in sections():
        data = sec.collect(store, runs, ctx)
        if data is not None:
            shown.append((sec, data))
    labels = runs.labels
    cards = [data["sides"] for sec, data in shown if sec.name == "overview"]
    sides = cards[0] if cards else []
    common = {
        "sides": sides,
        "labels": labels,
        "two": len(runs.sides) == 2,
        "many": len(runs.sides) > 2,
        "gate": _nav_gate(runs),
    }
    body = [(sec, _partial(sec, {**common, "data": data})) for sec, data in shown]
    js = "\n".join(_read(sec.js) for sec, _ in shown if sec.js is not None)
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    # Only our own script (by hash) may run, and nothing may be fetched: defence in depth
    # behind the escaping, which the browser test checks on its own.
    csp = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "img-src data:; font-src data:; base-uri 'none'; form-action 'none'"
    )
    versions = c.versions()
    context = {
        **common,
        "title": " vs ".join(s["model"]["spec"] for s in sides),
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "store_path": store_path,
        "versions": versions,
        "notes": ctx.notes,
        "nav": [(sec.name, sec.title) for sec, _ in shown],
        "body": body,
        "css": Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
        "js": Markup(js),
        "csp": csp,
        "data_json": Markup(embed_json(ctx.page_data)),
    }
    # Rows stored before keys were scrubbed on write, or keys set since: never on the page.
    return scrub(_env().get_template("report.html.j2").render(**context))


def _nav_gate(runs: ReportRuns) -> dict[str, Any] | None:
    """The gate badge in the top bar: PASS when the gate (every candidate's, with several) passed."""
    results = [runs.gate] if runs.gate is not None else [g for g in runs.gates or [] if g is not None]
    return {"passed": all(g.passed for g in results)} if results else None


def _read(path: str | Path) -> str:
    return (path if isinstance(path, Path) else TEMPLATES / path).read_text(encoding="utf-8")


def _partial(sec: Section, context: dict[str, Any]) -> Markup:
    if isinstance(sec.template, Path):  # a plugin's own file
        template = _env().from_string(sec.template.read_text(encoding="utf-8"))
    else:
        template = _env().get_template(sec.template)
    return Markup(template.render(**context))
