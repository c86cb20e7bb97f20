"""``edgekit demo``: the whole story so far, end to end, on this machine."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from edgekit.cli.examples import print_training_summary
from edgekit.cli.output import emit_json, log, stdout
from edgekit.examples import get_example, train_example

DEMO_EXAMPLE = "digits-cnn"


def demo(
    out: Path = typer.Option(
        None, "--out", "-o", help="Folder for the demo's files (default: a new temporary folder, kept)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists and is not empty."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout; logs go to stderr."),
) -> None:
    """Train the digit classifier on the server side and show what edgekit made of it."""
    spec = get_example(DEMO_EXAMPLE)
    workdir = Path(out) if out else Path(tempfile.mkdtemp(prefix="edgekit-demo-"))
    model_dir = workdir / "digits"
    log("edgekit demo — from a server-trained model towards an edge device")
    log(f"step 1/1  server: train {spec.name} ({spec.lesson}) on scikit-learn's bundled digits")
    result = train_example(DEMO_EXAMPLE, model_dir, force=force, progress=lambda line: log(f"          {line}"))
    if as_json:
        emit_json({"workdir": str(workdir), "steps": [{"step": "train", **result}]})
        return
    stdout.print()
    print_training_summary(result)
    stdout.print(
        f"\nThe trained model and its data are in {model_dir}:\n"
        "  model.keras   the Keras model as trained on the server\n"
        "  data.npz      calibration images (for int8) and a labeled test split, model-ready\n"
        "  labels.txt    the class names\n"
        "  example.json  task, preprocessing (pixel/255, 28×28 gray), metric, training time\n"
        "Train the other course models with `edgekit examples list` and `edgekit examples train NAME --out DIR`."
    )
