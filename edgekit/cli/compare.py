"""``edgekit compare``: the server (over HTTP) against edge artifacts, on the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgekit.cli.output import emit_json, human_bytes, log, print_wide, stdout
from edgekit.errors import require_extra


def _table(document: dict[str, Any]) -> Table:
    latency = document["server"]["latency"]
    table = Table(title=f"edgekit compare · {document['data']['samples']} samples · {latency['link']['described']}")
    for column in ("side", "metric", "drop", "agreement", "p50 here", "p50 compared", "size"):
        table.add_column(column, justify="left" if column == "side" else "right")
    server_metric = next((e["quality"]["metric"] for e in document["edge"] if e["quality"]["metric"]), None)
    size = document["server"].get("size_bytes")
    table.add_row(
        f"server {document['server']['url']}",
        f"{server_metric['name']} {server_metric['server']:.4f}" if server_metric else "—",
        "", "",
        f"{latency['measured']['p50_ms']:.2f} ms",
        f"{latency['with_link']['p50_ms']:.2f} ms (link included)",
        human_bytes(size) if size else "—",
    )  # fmt: skip
    for edge in document["edge"]:
        m, q = edge["quality"]["metric"], edge["quality"]
        unit = " %" if m and m["drop_unit"] == "percent" else " pt"
        table.add_row(
            Path(edge["artifact"]).name,
            f"{m['name']} {m['edge']:.4f}" if m else "—",
            f"{m['drop']:.2f}{unit}" if m else "—",
            f"{q['top1_agreement']:.2%}" if q["top1_agreement"] is not None else "—",
            f"{edge['latency']['here']['p50_ms']:.2f} ms",
            f"{edge['latency']['compared_ms']:.2f} ms ({edge['latency']['compared_basis']})",
            human_bytes(edge["size_bytes"]),
        )
    return table


def compare(
    more_edge: list[Path] = typer.Argument(
        None, metavar="ARTIFACT", help="More edge artifacts: `--edge a.tflite b.onnx` reads as two."
    ),
    server: str = typer.Option(..., "--server", help="Server side: a TF Serving model URL or a local Keras model."),
    edge: list[Path] = typer.Option(
        ..., "--edge", metavar="ARTIFACT", help="Edge artifact(s): .tflite, .onnx, OpenVINO .xml (repeat)."
    ),
    data: Path = typer.Option(..., "--data", help="Labelled data: an example's data.npz, an .npz, or image folder."),
    device: str = typer.Option(None, "--device", help="Predict the edge on this device profile (rpi4, pixel4…)."),
    rtt: float = typer.Option(0.0, "--rtt", help="Emulated round-trip time to the server, ms."),
    uplink: float = typer.Option(None, "--uplink", help="Emulated uplink, Mbit/s (applied to the request size)."),
    downlink: float = typer.Option(None, "--downlink", help="Emulated downlink, Mbit/s (applied to the answer)."),
    requests: int = typer.Option(100, "--requests", help="Single-sample requests timed against the server."),
    runs: int = typer.Option(100, "--runs", help="Single-sample inferences timed per edge artifact here."),
    threads: int = typer.Option(None, "--threads", help="Threads for the edge runtimes (and the prediction)."),
    limit: int = typer.Option(None, "--limit", help="Use at most this many samples of the data."),
    report: Path = typer.Option(None, "--report", help="Write the HTML report here."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --report."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout; progress goes to stderr."),
) -> None:
    """Server versus edge: accuracy, agreement, per-class drift, latency with the network, size, break-even."""
    require_extra("httpx", "serve")
    from edgekit.compare.link import Link
    from edgekit.compare.run import CompareRequest
    from edgekit.compare.run import compare as run_compare

    if report is not None:
        require_extra("matplotlib", "serve")
    request = CompareRequest(
        server=server,
        edge=[*edge, *(more_edge or [])],
        data=data,
        device=device,
        link=Link(rtt_ms=rtt, uplink_mbps=uplink, downlink_mbps=downlink),
        requests=requests,
        runs=runs,
        threads=threads,
        limit=limit,
        report=report,
        force=force,
    )
    document = run_compare(request, progress=lambda line: log(f"compare: {line}"))
    if as_json:
        emit_json(document)
        return
    print_wide(_table(document))
    for entry in document["edge"]:
        stdout.print(f"{Path(entry['artifact']).name}: {entry['verdict']}", markup=False)
        for note in entry["quality"]["notes"]:
            stdout.print(f"  note: {note}", markup=False)
    if document["report"]:
        stdout.print(f"report: {document['report']}", markup=False)
