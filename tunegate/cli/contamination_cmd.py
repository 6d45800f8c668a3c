"""`tunegate data contamination TRAIN... --suite S...`: which eval examples the training data holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tunegate.cli.common import DEFAULT_DB, DbOption, console


def contamination_cmd(
    train: Annotated[list[Path], typer.Argument(help="Training data files (.jsonl / .json, any format).")],
    suite: Annotated[list[str], typer.Option("--suite", "-s", help="Suite name or file (repeatable).")],
    db: DbOption = DEFAULT_DB,
    threshold: Annotated[float, typer.Option(help="MinHash Jaccard threshold for near-duplicates.")] = 0.5,
    ngram: Annotated[int, typer.Option(help="Span length in tokens (words; CJK characters).")] = 13,
    store: Annotated[bool, typer.Option(help="Store the results (show, compare, gate, report).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print every match as JSON.")] = False,
    top: Annotated[int, typer.Option(help="Contaminated examples to list per suite.")] = 10,
) -> None:
    """Find suite examples the training files contain: exact (normalised), 13-gram, MinHash LSH."""
    from suites import load_suite
    from trainers.contamination import scan

    for p in train:  # before loading suites (a benchmark suite loads lm-eval)
        if not p.is_file():
            from harness.errors import UserError

            raise UserError("training file not found", path=p)
    suites = [load_suite(s) for s in suite]
    result = scan(train, suites, ngram=ngram, threshold=threshold)
    if store:
        _store(db, result)
    if as_json:
        matches = [m.__dict__ for m in result.matches]
        print(json.dumps({"suites": result.suites, "matches": matches}, indent=2))
        return
    print_scan(result, top)


def _store(db: Path, result: Any, training_run_id: str | None = None) -> str:
    from harness.store import Store
    from harness.store.contamination import files_hash, write_scan

    with Store(db) as s:
        return write_scan(s, result, files_hash(result.train_files), training_run_id)


def print_scan(result: Any, top: int = 10) -> None:
    t = Table("suite", "examples", "contaminated", "exact", "13-gram", "MinHash", title="contamination")
    for info in result.suites:
        n, bad = info["n_examples"], len(info["contaminated"])
        colour = "red" if bad else "green"
        t.add_row(
            info["name"], str(n), f"[{colour}]{bad}[/] ({bad / n:.1%})" if n else "0",
            *(str(info["by_method"][m]) for m in ("exact", "ngram", "minhash")),
        )  # fmt: skip
    console.print(t)
    console.print(
        f"{result.n_records} training records from {len(result.train_files)} file(s), {result.seconds:.1f}s",
        highlight=False,
    )
    for info in result.suites:
        ids = info["contaminated"][: max(top, 0)]
        for ex in ids:
            found = [m for m in result.matches if m.suite_id == info["suite_id"] and m.example_id == ex]
            where = ", ".join(
                f"{m.method}{f' ({m.field})' if m.field else ''} {m.score:.2f} at {Path(m.train_file).name}:"
                f"{m.record}"
                for m in found[:3]
            )
            console.print(f"  {info['name']} {escape(ex)}: {escape(where)}", highlight=False)
        if len(info["contaminated"]) > len(ids):
            console.print(f"  {info['name']}: … {len(info['contaminated']) - len(ids)} more", highlight=False)


def check_candidate(db: Path, candidate: str, suites: list[str]) -> None:
    """After training: scan the candidate's training data (its whole lineage) against the suites.

    Silent when the candidate has no stored training run (a model trained elsewhere).
    """
    from harness.store import Store
    from harness.store import queries_reports as q
    from harness.store.training import lineage
    from suites import load_suite
    from trainers.contamination import scan

    with Store(db) as s:
        model_id = q.model_id_by_spec(s, candidate)
        runs = [] if model_id is None else [x for x in lineage(s, model_id) if x.get("training_run_id")]
        files, run_id = [], None
        for x in runs:
            ds = q.training_dataset(s, x["training_run_id"])
            if ds is None:
                continue
            run_id = run_id or x["training_run_id"]
            files += [ds[k] for k in ("train", "validation") if ds.get(k) and Path(ds[k]).is_file()]
    if not files:
        return
    result = scan([Path(f) for f in dict.fromkeys(files)], [load_suite(x) for x in suites])
    _store(db, result, run_id)
    console.rule("contamination: training data vs eval suites")
    print_scan(result, top=5)
