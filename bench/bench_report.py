"""The HTML report for 2 runs × 5,000 examples: file size, render time, first paint in Chromium.

Targets: <= 5 MB, rendered by tunegate in <= 3 s, first paint in headless Chromium <= 2 s.
The store is written through the Store API (tests/report_store.py): prompts with a chat
template, ~30-word outputs, two metrics, judge rationales on every 7th example.

    .venv/bin/python bench/bench_report.py [N]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import timed  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    from tests.report_store import make_store

    with tempfile.TemporaryDirectory() as tmp:
        db, out = Path(tmp) / "bench.duckdb", Path(tmp) / "report.html"
        t0 = time.perf_counter()
        make_store(db, n=n, words=30, hostile=False)
        print(f"store: 2 runs × {n:,} examples, written in {time.perf_counter() - t0:.1f} s")

        # The CLI as a user runs it: process start, imports (scipy for the paired tests), render, write.
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "tunegate", "report", "m-base", "m-cand", "-o", str(out), "--db", str(db)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        t_cli = time.perf_counter() - t0
        if r.returncode:
            sys.exit(r.stderr)
        # The fixed part of that: a fresh interpreter importing what the command imports.
        imports = "import tunegate.cli, reports.collect, reports.render, scipy.stats"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", imports], cwd=ROOT, check=True)
        t_imports = time.perf_counter() - t0

        from harness.store import Store
        from reports import render_report

        with Store(db) as store:
            render_report(store, ["m-base", "m-cand"])  # warm imports, scipy included
            t_render, html = timed(lambda: render_report(store, ["m-base", "m-cand"]), repeat=3)
        size = len(html.encode("utf-8"))
        print(f"\n== report of 2 runs × {n:,} examples")
        print(f"  file size                          {size / 1e6:7.2f} MB   target <= 5 MB")
        print(f"  render in-process (median of 3)    {t_render:7.2f} s    target <= 3 s")
        print(
            f"  `tunegate report` end to end       {t_cli:7.2f} s    (process start, imports, render, write)"
        )
        print(f"    of which start-up and imports    {t_imports:7.2f} s    (scipy.stats is most of it)")

        from tests.browser import Chromium, chromium_available

        if not chromium_available():
            print("  first paint: skipped (no /usr/bin/chromium; bash scripts/setup.sh installs it)")
            return
        paints, loads, filters = [], [], []
        for _ in range(3):
            with Chromium() as c:
                c.open(out.as_uri())
                timing = c.eval(
                    "({paint: performance.getEntriesByType('paint').map(e => [e.name, e.startTime]),"
                    " load: performance.getEntriesByType('navigation')[0].loadEventEnd})"
                )
                paints.append(dict(timing["paint"]).get("first-contentful-paint", float("nan")) / 1000)
                loads.append(timing["load"] / 1000)
                filters.append(
                    c.eval(
                        "(() => { const t = performance.now();"
                        " document.querySelector('[data-filter=regressed]').click();"
                        " const s = document.getElementById('tg-sort'); s.value = 'worst';"
                        " s.dispatchEvent(new Event('change')); return performance.now() - t; })()"
                    )
                    / 1000
                )
                assert c.problems() == [], c.problems()
                assert c.requests() == [out.as_uri()]
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        print(f"  first contentful paint (median 3)  {med(paints):7.2f} s    target <= 2 s")
        print(f"  load event end                     {med(loads):7.2f} s")
        print(f"  'regressed' filter + sort by delta {med(filters):7.3f} s    (5,000 examples, 50 drawn)")


if __name__ == "__main__":
    main()
