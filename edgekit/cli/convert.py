"""``edgekit convert``: one command from a server model to a checked edge artifact."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgekit.cli.output import emit_json, human_bytes, log, stdout
from edgekit.data import DEFAULT_CALIBRATION_SAMPLES
from edgekit.errors import ConfigError, DataError, InputNotFoundError, QualityGateFailed, UnknownNameError
from edgekit.formats import FORMATS, get_format, parse_precision
from edgekit.inputs import ShapeRequest
from edgekit.manifest import COLOUR_ORDERS
from edgekit.tasks import TASK_NAMES


def _metric_text(metric: dict[str, Any] | None) -> str:
    if not metric:
        return "—"
    unit = "%" if metric["name"] == "rmse" else " pt"
    return f"{metric['name']} {metric['source']:.4f} → {metric['artifact']:.4f} (drop {metric['drop']:.2f}{unit})"


def _print_report(report: dict[str, Any]) -> None:
    if "ladder" in report:
        ladder = Table(title="quantization ladder (int8 first)")
        for column in ("precision", "size", "metric", "drop", "within budget", ""):
            ladder.add_column(column)
        for rung in report["ladder"]:
            metric = rung["metric"]
            ladder.add_row(
                rung["precision"],
                human_bytes(rung["size_bytes"]),
                f"{metric['artifact']:.4f}" if metric else "—",
                f"{metric['drop']:.2f}" if metric else "—",
                "yes" if rung["passed"] else "no",
                "← chosen" if rung["chosen"] else "",
            )
        stdout.print(ladder)
    parity = report["parity"]
    table = Table(title=f"{report['source']} → {report['format']} {report['precision']}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    ratio = report["size_bytes"] / report["source_size_bytes"] if report["source_size_bytes"] else float("nan")
    table.add_row("artifact", report["artifact"])
    table.add_row(
        "size", f"{human_bytes(report['size_bytes'])} ({ratio:.2f} × source {human_bytes(report['source_size_bytes'])})"
    )
    agreement = parity.get("top1_agreement")
    table.add_row(
        "parity",
        (f"top-1 agreement {agreement:.2%}, " if agreement is not None else "")
        + f"max |error| {parity['max_abs_error']:.3g}, SNR {parity['snr_db']:.1f} dB",
    )
    table.add_row("metric", _metric_text(report["metric"]))
    gate = report["gate"]
    table.add_row(
        "gate", "—" if gate is None else f"max drop {gate['max_drop']}: {'PASSED' if gate['passed'] else 'FAILED'}"
    )
    table.add_row("checked on", f"{report['evaluation']['samples']} samples of {report['evaluation']['origin']}")
    inputs = "; ".join(
        f"{i['name']} ({', '.join(map(str, i['shape']))}) from {i['origin']}" for i in report.get("inputs", [])
    )
    table.add_row("at inputs", inputs or "—")
    table.add_row("manifest", report["manifest"])
    table.add_row("time", f"{report['seconds']:.1f} s")
    for note in report["notes"]:
        table.add_row("note", note)
    stdout.print(table)


# raw: outputs the daemon publishes as they are (named arrays, bounded), for a model it cannot decode.


def _read_labels(path: Path) -> list[str]:
    if not path.exists():
        raise InputNotFoundError(f"--labels {path} does not exist")
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--labels {path.name} is not a readable text file (one class name per line)") from exc
    if not names:
        raise DataError(f"--labels {path.name} holds no class names", hint="write one class name per line")
    return names


def image_preprocessing(
    size: str | None, color: str | None, scale: float | None, offset: float | None
) -> dict[str, Any] | None:
    """Preprocessing for a folder of images from flags; None when no flag was given."""
    given: dict[str, Any] = {}
    if size is not None:
        match = re.fullmatch(r"(\d+)[x×](\d+)", size.strip())
        if not match or min(int(match[1]), int(match[2])) < 1:
            raise ConfigError(f"--image-size must look like HEIGHTxWIDTH (e.g. 28x28), got '{size}'")
        given["size"] = [int(match[1]), int(match[2])]
    if color is not None:
        if color not in COLOUR_ORDERS:
            raise UnknownNameError("colour order", color, COLOUR_ORDERS)
        given["color"] = color
    if scale is not None:
        given["scale"] = scale
    if offset is not None:
        given["offset"] = offset
    if not given:
        return None
    return {"kind": "image", "layout": "NHWC", "resize": "linear", "dtype": "float32", **given}


def convert(
    source: Path = typer.Argument(
        ..., help="Model to convert: .keras, .h5, SavedModel folder, .tflite, .onnx or an OpenVINO .xml."
    ),
    to: str = typer.Option(..., "--to", help=f"Target format: {', '.join(FORMATS)}."),
    quant: str = typer.Option(
        "fp32",
        "--quant",
        help="fp32, fp16, dynamic, int8, or auto (int8 → dynamic → fp16 → fp32: the first within --max-drop).",
    ),
    calib: Path = typer.Option(None, "--calib", help="Calibration data: .npz, .npy or a folder of images."),
    eval_data: Path = typer.Option(None, "--eval", help="Labeled evaluation data (default: the example's data.npz)."),
    max_drop: float = typer.Option(None, "--max-drop", help="Quality gate: largest allowed metric drop (points)."),
    calib_samples: int = typer.Option(DEFAULT_CALIBRATION_SAMPLES, "--calib-samples", help="Calibration samples used."),
    out: Path = typer.Option(None, "--out", "-o", help="Artifact path (default: beside the source)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing artifact."),
    allow_flex: bool = typer.Option(
        False, "--allow-flex", help="TFLite: allow Flex (TensorFlow) ops; devices cannot run them."
    ),
    image_size: str = typer.Option(None, "--image-size", help="Image folders: model input size as HxW, e.g. 28x28."),
    color: str = typer.Option(None, "--color", help="Image folders: rgb, bgr or gray."),
    scale: float = typer.Option(None, "--scale", help="Image folders: input = pixel × scale + offset (e.g. 0.00392)."),
    offset: float = typer.Option(None, "--offset", help="Image folders: added after scaling."),
    task: str = typer.Option(
        None,
        "--task",
        help="For a model without example.json: classification, binary-classification, regression, detection "
        "or raw (outputs published as they are).",
    ),
    labels: Path = typer.Option(None, "--labels", help="Class names, one per line (a model without example.json)."),
    shape: list[str] = typer.Option(
        None,
        "--shape",
        metavar="NAME=D0,D1,…",
        help="Input size to check at, e.g. x=1,3,640,640 (bare for one input); an artifact built from Keras, "
        "or from ONNX to TFLite or OpenVINO, is fixed at it.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout; logs go to stderr."),
) -> None:
    """Convert a model to TFLite, ONNX or OpenVINO IR, check it against its source and gate it."""
    from edgekit.converters.pipeline import ConvertRequest
    from edgekit.converters.pipeline import convert as run_conversion

    target = get_format(to)
    preprocessing = image_preprocessing(image_size, color, scale, offset)
    if task is not None and task not in TASK_NAMES:
        raise UnknownNameError("task", task, TASK_NAMES)
    precision = parse_precision(quant)
    shapes = ShapeRequest.parse(shape)
    names = _read_labels(labels) if labels is not None else None
    if precision is None and max_drop is None:
        log(
            "note: --quant auto without --max-drop keeps the first precision that converts (int8 with calibration data)"
        )
    report = run_conversion(
        ConvertRequest(
            source=source,
            target=target,
            precision=precision,
            calib=calib,
            eval=eval_data,
            max_drop=max_drop,
            out=out,
            force=force,
            allow_flex=allow_flex,
            calib_samples=calib_samples,
            preprocessing=preprocessing,
            task=task,
            shapes=shapes,
            labels=names,
        ),
        progress=log,
    )
    if as_json:
        emit_json(report)
    else:
        _print_report(report)
    gate = report["gate"]
    if gate is not None and not gate["passed"]:
        metric = report["metric"]
        raise QualityGateFailed(
            f"{report['precision']} artifact drops {metric['name']} by {metric['drop']:.2f}, "
            f"over --max-drop {gate['max_drop']}",
            hint=f"the artifact is kept at {report['artifact']} and its manifest records the failure",
        )
