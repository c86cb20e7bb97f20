"""``edgekit analyze``: what each operator kind of a model costs, costliest first."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgekit.cli.output import emit_json, human_bytes, print_wide, stdout


def _count(value: float | None) -> str:
    if value is None:
        return "unknown cost"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f}"


def analyze(
    model: Path = typer.Argument(..., help="A .tflite, .onnx or OpenVINO .xml model."),
    top: int = typer.Option(12, "--top", help="Operator kinds to list (costliest first); 0 lists all."),
    ops: bool = typer.Option(False, "--ops", help="With --json: include every operator, not only per-kind totals."),
    shape: list[str] = typer.Option(
        None,
        "--shape",
        metavar="NAME=D0,D1,…",
        help="Input size to price it at, e.g. x=1,3,640,640 (repeat per input; bare for a one-input model).",
    ),
    data: Path = typer.Option(None, "--data", help="Real input samples (.npz/.npy): their shapes, and values to run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Per operator kind: MACs, parameters and bytes moved; totals and peak activation memory."""
    from edgekit.data import Split, check_data_path, load_dataset
    from edgekit.errors import InputNotFoundError
    from edgekit.inputs import ShapeRequest, resolve, shapes_of
    from edgekit.manifest import load_manifest
    from edgekit.predict.graph import analyze as analyze_graph
    from edgekit.predict.graph import model_inputs

    if not model.exists():
        raise InputNotFoundError(f"model {model} does not exist")
    request = ShapeRequest.parse(shape)
    if data is not None:
        check_data_path(data, "--data")
    specs = model_inputs(model) if model.suffix.lower() in (".tflite", ".onnx", ".xml") else []
    manifest = load_manifest(model)
    layout = manifest.input_layout if manifest is not None else None
    dataset = load_dataset(data, Split.EVALUATION, specs, layout=layout) if data is not None and specs else None
    resolved = resolve(
        specs,
        request=request,
        data_shapes=dataset.sample_shapes() if dataset is not None else None,
        manifest_inputs=manifest.inputs if manifest is not None else None,
        model=model.name,
    )
    feeds = {key: dataset.sample(0, key) for key in dataset.inputs} if dataset is not None else None
    graph = analyze_graph(model, shapes=shapes_of(resolved), feeds=feeds)
    if as_json:
        emit_json({**graph.to_dict(ops=ops), "inputs": [r.to_dict() for r in resolved]})
        return
    rows = graph.by_kind()
    table = Table(title=f"{model.name} · {graph.format} · {graph.precision} · {len(graph.ops)} operators")
    for column in ("operator", "class", "count", "MACs", "share", "params", "bytes moved"):
        table.add_column(column, justify="left" if column in ("operator", "class") else "right")
    total_macs = graph.macs or 1
    for row in rows[: top or None]:
        share = (
            ""
            if row["macs"] is None or row["class"] not in ("conv", "depthwise", "matmul")
            else (f"{100 * row['macs'] / total_macs:.1f} %")
        )
        table.add_row(
            row["kind"], row["class"], str(row["count"]), _count(row["macs"]), share,
            _count(row["params"]), human_bytes(row["bytes"]),
        )  # fmt: skip
    print_wide(table, min_width=100)
    stdout.print("inputs: " + "; ".join(r.describe() for r in resolved), markup=False)
    if top and len(rows) > top:
        stdout.print(f"… {len(rows) - top} more operator kinds (--top 0 lists all)")
    stdout.print(
        f"total: {_count(graph.macs)}MACs ({_count(graph.flops)}FLOPs), {_count(graph.params)} parameters, "
        f"weights {human_bytes(graph.weight_bytes)}, peak activations {human_bytes(graph.peak_activation_bytes)}, "
        f"{human_bytes(graph.bytes)} moved per inference",
        markup=False,
    )
    if graph.format == "tflite" and graph.partitions:
        undelegated = sorted({op.kind for op in graph.ops if not op.delegated})
        left = (
            f"{', '.join(undelegated)} run outside it, on LiteRT's own kernels"
            if undelegated
            else "every operator runs inside it"
        )
        pieces = "partition" if graph.partitions == 1 else "partitions"
        stdout.print(f"XNNPACK (LiteRT's CPU delegate): {graph.partitions} {pieces}; {left}", markup=False)
    if graph.unknown_kinds:
        stdout.print(
            f"unknown cost: {', '.join(graph.unknown_kinds)} (edgekit has no cost formula for these; "
            "they are left out of the totals)",
            markup=False,
        )
