"""``edgekit examples list | train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgekit.cli.help import EdgekitCommand
from edgekit.cli.output import emit_json, human_bytes, log, stdout
from edgekit.examples import EXAMPLES, train_example

app = typer.Typer(help="The course's example models, trained on the server.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document on stdout; logs go to stderr.")


@app.command("list", cls=EdgekitCommand)
def list_examples(as_json: bool = JSON_OPTION) -> None:
    """List the example models, their task and the quality each must reach."""
    rows: list[dict[str, Any]] = [
        {
            "name": spec.name,
            "task": spec.task.value,
            "metric": spec.metric.value,
            "floor": spec.floor_text,
            "default_epochs": spec.default_epochs,
            "summary": spec.summary,
            "lesson": spec.lesson,
        }
        for spec in EXAMPLES.values()
    ]
    if as_json:
        emit_json({"examples": rows})
        return
    table = Table(title="edgekit examples")
    for column in ("name", "task", "summary", "quality floor"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["task"], row["summary"], row["floor"])
    stdout.print(table)
    stdout.print("Train one with: edgekit examples train NAME --out DIR")


def print_training_summary(result: dict[str, Any]) -> None:
    metric = result["metric"]
    floor = result["floor"]
    verdict = "meets" if floor["met"] else "MISSES"
    out = Path(result["out"])
    stdout.print(
        f"{result['name']}: {metric['name']} {metric['value']} — {verdict} the floor ({floor['text']}); "
        f"trained in {result['train_seconds']:.1f} s"
    )
    table = Table(title=f"written to {out}")
    table.add_column("file")
    table.add_column("size", justify="right")
    for name in result["files"]:
        table.add_row(name, human_bytes((out / name).stat().st_size))
    stdout.print(table)


@app.command("train", cls=EdgekitCommand)
def train(
    name: str = typer.Argument(..., help="Example to train (see `edgekit examples list`)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write model.keras, data.npz, labels.txt, example.json."
    ),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default: the example's own)."),
    seed: int = typer.Option(0, "--seed", help="Seed for data generation, splits and weights: same seed, same data."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists and is not empty."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train an example model on the server and write it with its data."""
    result = train_example(name, out, epochs=epochs, seed=seed, force=force, progress=log)
    if as_json:
        emit_json(result)
    else:
        print_training_summary(result)
