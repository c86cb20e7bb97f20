"""``edgekit demo``: the whole story so far, end to end, on this machine."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from edgekit.cli.output import emit_json, human_bytes, log, stdout
from edgekit.examples import get_example, train_example

DEMO_EXAMPLE = "digits-cnn"
DEMO_MAX_DROP = 1.0  # accuracy points the int8 edge model may lose


def _convert_step(model_dir: Path, to: str, quant: str) -> dict[str, Any]:
    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.formats import get_format, parse_precision

    return convert(
        ConvertRequest(
            source=model_dir / "model.keras",
            target=get_format(to),
            precision=parse_precision(quant),
            max_drop=DEMO_MAX_DROP,
        ),
        progress=lambda line: log(f"          {line}"),
    )


def demo(
    out: Path = typer.Option(
        None, "--out", "-o", help="Folder for the demo's files (default: a new temporary folder, kept)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists and is not empty."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout; logs go to stderr."),
) -> None:
    """Train the digit classifier on the server, convert it for the edge, and show the numbers."""
    spec = get_example(DEMO_EXAMPLE)
    workdir = Path(out) if out else Path(tempfile.mkdtemp(prefix="edgekit-demo-"))
    model_dir = workdir / "digits"
    log("edgekit demo — from a server-trained model to a checked edge artifact")
    log(f"step 1/3  server: train {spec.name} ({spec.lesson}) on scikit-learn's bundled digits")
    trained = train_example(DEMO_EXAMPLE, model_dir, force=force, progress=lambda line: log(f"          {line}"))
    log(f"step 2/3  convert for the edge: TFLite int8, calibrated on the training split, gate {DEMO_MAX_DROP} pt")
    edge = _convert_step(model_dir, "tflite", "int8")
    log("step 3/3  convert for an x86 box: OpenVINO IR fp16")
    x86 = _convert_step(model_dir, "openvino", "fp16")
    steps = [{"step": "train", **trained}, {"step": "convert", **edge}, {"step": "convert", **x86}]
    if as_json:
        emit_json({"workdir": str(workdir), "steps": steps})
        return

    metric = trained["metric"]
    stdout.print()
    stdout.print(f"[bold]edgekit demo[/bold] — files in {model_dir}")
    stdout.print(
        f"1. Trained on the server: {spec.name}, test accuracy {metric['value']:.4f} "
        f"({trained['floor']['text']}: {'met' if trained['floor']['met'] else 'MISSED'}) "
        f"in {trained['train_seconds']:.1f} s → model.keras"
    )
    for number, report in ((2, edge), (3, x86)):
        m, parity = report["metric"], report["parity"]
        ratio = report["size_bytes"] / report["source_size_bytes"]
        gate = "passed" if report["gate"]["passed"] else "FAILED"
        stdout.print(
            f"{number}. {report['format']} {report['precision']}: {Path(report['artifact']).name}, "
            f"{human_bytes(report['size_bytes'])} ({ratio:.2f} × the Keras file); "
            f"agrees with Keras on {parity['top1_agreement']:.1%} of {report['evaluation']['samples']} test images; "
            f"accuracy {m['source']:.4f} → {m['artifact']:.4f} (drop {m['drop']:.2f} pt, gate {gate})"
        )
    stdout.print(
        "Every artifact has a manifest beside it (*.manifest.json): input layout and scaling, quantization "
        "parameters, labels, hashes, tool versions and the figures above — what a device needs to run it.\n"
        "Next: `edgekit examples list`, `edgekit examples train NAME --out DIR`, "
        "`edgekit convert DIR/model.keras --to onnx --quant auto --max-drop 1`."
    )
