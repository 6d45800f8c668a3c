"""`tunegate review RUN... -o review.html` (a blind spot-check page) and
`tunegate review import LABELS.jsonl` (its labels into the store, kappa with the judges)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console


def review_cmd(
    runs: Annotated[
        list[str], typer.Argument(help="Run ids (prefixes ok) of one suite; or `import LABELS.jsonl`.")
    ],
    db: DbOption = DEFAULT_DB,
    sample: Annotated[
        int, typer.Option(help="Examples to review (stratified by score, seeded).", min=1)
    ] = 50,
    criteria: Annotated[
        Path | None,
        typer.Option(help="YAML `criteria: [{name, description, min, max}]` (default: quality 1-5)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the blind order.")] = 0,
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the page.")] = Path("review.html"),
) -> None:
    """Write a blind human spot-check page, or (`review import FILE`) store its exported labels."""
    from harness.errors import UserError
    from harness.store import Store

    if runs[0] == "import":
        if len(runs) != 2:
            raise UserError("usage: tunegate review import LABELS.jsonl")
        from reports.review import import_labels

        with Store(db, must_exist=True) as store:
            res = import_labels(store, Path(runs[1]))
        console.print(f"stored {res['labels']} labels from {runs[1]}", highlight=False)
        for a in res["agreements"]:
            console.print(
                f"  judge run {a['judge_run']} ({a['metric']}) vs human labels of {a['run']}: "
                f"quadratic kappa {a['kappa']:.3f} on {a['n']} examples",
                highlight=False,
            )
        return
    from reports.review import build_review, load_criteria

    crit = load_criteria(criteria)
    with Store(db, must_exist=True) as store:
        review_id, html = build_review(store, runs, sample=sample, criteria=crit, seed=seed)
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the review page to {out}: {e.strerror or e}") from None
    console.print(
        f"review {review_id}: {out} (export the labels, then `tunegate review import FILE`)", highlight=False
    )
