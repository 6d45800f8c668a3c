"""The report's sections: each one a registered unit, so a plugin can add its own.

A section is a name (its anchor on the page), a title (its link in the top bar), an order, and:

- `collect(store, runs, ctx) -> data | None`: what it shows, read from the store (None: the
  section is left out, link included);
- a Jinja2 partial that draws `data` (autoescaped; `sides`, `labels`, `two`, `many` and `gate`
  are there too);
- optionally a script, appended to the page's one script (the CSP allows it by hash). Data the
  script reads goes into `ctx.page_data`, embedded once as inert JSON (`#tg-data`).

    from reports.sections import section

    @section("cost", title="Cost", order=55, template=Path(__file__).parent / "cost.html.j2")
    def cost(store, runs, ctx):
        return {"dollars": ...}

Sections share what is expensive through `ctx.memo` (the scoreboard rows, the per-example data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.registry import Registry
from harness.store import Store
from reports.sides import ReportRuns


@dataclass
class SectionContext:
    """What sections share while a report is collected."""

    store_path: str
    notes: list[str] = field(default_factory=list)
    """Shown at the top of the page: what could not be compared, and why."""
    page_data: dict[str, Any] = field(default_factory=dict)
    """Embedded as JSON for the sections' scripts."""
    _memo: dict[str, Any] = field(default_factory=dict)

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """`make()` once per report, whichever section asks first."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]


class Collect(Protocol):
    def __call__(self, store: Store, runs: ReportRuns, ctx: SectionContext) -> Any | None: ...


@dataclass(frozen=True)
class Section:
    name: str
    """Its element id and anchor."""
    title: str
    """Its link in the top bar."""
    order: int
    collect: Collect
    template: str | Path
    """A partial under reports/templates, or a file of the plugin's own."""
    js: str | Path | None = None
    """A script under reports/templates, or a file of the plugin's own."""


SECTIONS: Registry[Any] = Registry("report section")
"""name → collect; the entry's info holds title, order, template and js."""


def section(
    name: str, *, title: str, order: int, template: str | Path | None = None, js: str | Path | None = None
) -> Callable[[Collect], Collect]:
    """Decorator: register `collect` as the section `name` (template default: section_NAME.html.j2)."""
    return SECTIONS.register(
        name, title=title, order=order, template=template or f"section_{name}.html.j2", js=js
    )


def sections() -> list[Section]:
    """Every registered section, in page order (built-ins first registered on import)."""
    import reports.builtin_sections  # noqa: F401  (registers the built-in sections)

    out = []
    for name in SECTIONS.names():
        e = SECTIONS.get(name)
        out.append(
            Section(name, e.info["title"], e.info["order"], e.factory, e.info["template"], e.info["js"])
        )
    return sorted(out, key=lambda s: (s.order, s.name))
