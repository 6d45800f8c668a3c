"""`tunegate data check | convert | split`: look at training data before training on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tunegate.cli.common import console, console_err

if TYPE_CHECKING:
    from trainers.checks import DataReport

app = typer.Typer(help="Check, convert and split training data.", no_args_is_help=True)

FormatOption = Annotated[
    str | None,
    typer.Option("--format", help="Input format: alpaca, sharegpt, messages, dpo (default: detected)."),
]


@app.command("check")
def check_cmd(
    file: Annotated[Path, typer.Argument(help="A .jsonl or .json data file.")],
    fmt: FormatOption = None,
    model: Annotated[str, typer.Option(help="Model spec whose tokenizer measures lengths.")] = "smollm2",
    min_output_tokens: Annotated[int, typer.Option(help="Warn about outputs shorter than this.")] = 2,
    max_length: Annotated[int, typer.Option(help="Warn about records longer than this (tokens).")] = 1024,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 when there are warnings.")] = False,
) -> None:
    """Quality report: counts, empty fields, duplicates, token lengths, first-word diversity.

    Exit 2 when lines cannot be read or no record is usable; with --strict, 1 on warnings.
    """
    from transformers import AutoTokenizer

    from harness.models import resolve_model
    from trainers.checks import check_file
    from trainers.data import read_data

    read_data(file, fmt)  # an unreadable file or unknown format fails before the tokenizer loads
    tok = AutoTokenizer.from_pretrained(resolve_model(model).weights)
    report = check_file(file, tok, fmt=fmt, min_output_tokens=min_output_tokens, max_length=max_length)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
    if report.failed:
        raise typer.Exit(2)
    if strict and report.warnings:
        raise typer.Exit(1)


def _print_report(r: DataReport) -> None:
    t = Table("", "value", show_header=False)
    t.add_row("format", r.format)
    t.add_row("records", f"{r.records} ({r.usable} usable, {len(r.bad_lines)} unreadable)")
    for name, lines in sorted(r.empty_fields.items()):
        t.add_row(f"empty {name}", str(len(lines)))
    t.add_row("output == instruction", str(len(r.output_equals_instruction)))
    t.add_row("exact duplicates", str(sum(len(g) - 1 for g in r.exact_duplicates)))
    t.add_row("near-duplicate groups", str(len(r.near_duplicates)))
    if r.format == "dpo":
        t.add_row("chosen == rejected", str(len(r.chosen_equals_rejected)))
    if r.scripts or r.mixed_script:
        parts = [f"{n} {name}" for name, n in sorted(r.scripts.items())]
        t.add_row("Chinese script", ", ".join(parts + [f"{len(r.mixed_script)} mixed"]))
    lengths = (
        ("output tokens", r.output_tokens),
        ("record tokens", r.total_tokens),
        ("output chars", r.output_chars),
    )
    for label, s in lengths:
        t.add_row(label, f"min {s.min}  median {s.median:g}  p95 {s.p95:g}  max {s.max}  (n={s.n})")
    fw = r.first_words
    top = ", ".join(f"{w or '∅'} {c}" for w, c in fw["top"])
    t.add_row("first words", f"{fw['distinct']} distinct of {fw['n']} ({fw['ratio']:.0%}); top: {top}")
    console.print(f"[bold]{escape(str(r.path))}[/]")
    console.print(t)
    for line, why in r.bad_lines[:20]:  # markup for the label only: the text is the user's
        console_err.print(f"[red]error[/] {escape(f'{r.path}:{line}: {why}')}", highlight=False)
    if len(r.bad_lines) > 20:
        console_err.print(f"… and {len(r.bad_lines) - 20} more unreadable lines")
    for w in r.warnings:
        console.print(f"[yellow]warning[/] {escape(w)}", highlight=False)
    if not r.warnings and not r.failed:
        console.print("[green]no warnings[/]")


@app.command("convert")
def convert_cmd(
    file: Annotated[Path, typer.Argument(help="Input .jsonl/.json file.")],
    to: Annotated[str, typer.Option("--to", help="Output format: alpaca, sharegpt, messages, dpo.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .jsonl file.")],
    fmt: FormatOption = None,
) -> None:
    """Rewrite FILE in another format (DPO pairs → SFT formats keep the chosen reply)."""
    from harness.errors import UserError
    from trainers.convert import convert, write_jsonl
    from trainers.data import FORMAT_HELP, FORMATS, read_data

    if to not in FORMATS:
        raise UserError(f"unknown output format '{to}' (known: {FORMAT_HELP})", field="to")
    data = read_data(file, fmt)
    records = convert(data, to)  # all or nothing: no partial output file on a bad record
    n = write_jsonl(out, records)
    console.print(f"wrote {n} {to} records to {out} (from {data.format})")


@app.command("split")
def split_cmd(
    file: Annotated[Path, typer.Argument(help="Input .jsonl/.json file.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: next to FILE).")
    ] = None,
    val: Annotated[float, typer.Option(help="Fraction for validation.")] = 0.1,
    test: Annotated[float, typer.Option(help="Fraction for test.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Shuffle seed: same seed, same split.")] = 42,
    fmt: FormatOption = None,
) -> None:
    """Split FILE into train/val/test files; near-duplicates never straddle two splits."""
    from trainers.convert import split, write_jsonl
    from trainers.data import read_data

    data = read_data(file, fmt)
    parts = split(data, val, test, seed)
    folder = out or file.parent
    stem = file.name.removesuffix(".jsonl").removesuffix(".json")
    for name, records in parts.items():
        path = folder / f"{stem}.{name}.jsonl"
        write_jsonl(path, records)
        console.print(f"{name:<5} {len(records):6d} records → {path}")
