"""``edgekit compare``: the same data through the server (over real HTTP) and through each edge
artifact (run here, predicted on a device), and what each side costs.

Order matters for the user: everything that can be refused (paths, data against every edge
artifact's inputs, the device, the report path) is checked before the server is called or
anything is timed, so bad input fails in a second with one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from edgekit import __version__
from edgekit.compare.client import ModelServerClient, check_url
from edgekit.compare.link import BreakEven, Link
from edgekit.compare.quality import compare_outputs
from edgekit.data import Dataset, Split, check_data_path, load_dataset, match_inputs
from edgekit.errors import ConfigError, DataError, DeviceError, InputNotFoundError
from edgekit.manifest import Manifest, ModelDescription, artifact_size, load_manifest, model_description, size_of
from edgekit.outputs import atomic_file, check_output_file
from edgekit.predict.profiles.host import machine_name

Progress = Callable[[str], None]
REQUEST_WARMUP = 5


@dataclass(frozen=True)
class CompareRequest:
    server: str  # a TF Serving model URL, or a local model edgekit serves for the comparison
    edge: list[Path]
    data: Path
    device: str | None = None  # a profile (rpi4, pixel4:tflite-gpu) the edge is predicted on
    link: Link = field(default_factory=Link)
    requests: int = 100  # single-sample requests timed against the server
    runs: int = 100  # single-sample inferences timed per edge artifact here
    threads: int | None = None
    batch: int = 32  # samples per request while collecting the server's outputs
    limit: int | None = None  # use at most this many samples
    report: Path | None = None
    force: bool = False

    def validate(self) -> None:
        if self.server_is_url:
            check_url(self.server)
        elif not Path(self.server).exists():
            raise InputNotFoundError(
                f"--server {self.server} does not exist", hint="give a local model or a server URL"
            )
        if not self.edge:
            raise ConfigError("give at least one --edge artifact")
        for path in self.edge:
            if not path.exists():
                raise InputNotFoundError(f"edge artifact {path} does not exist")
        for flag, value in (("--requests", self.requests), ("--runs", self.runs), ("--batch", self.batch)):
            if value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        check_data_path(self.data, "--data")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        self.link.validate()
        if self.report is not None:
            check_output_file(self.report, force=self.force)

    @property
    def server_is_url(self) -> bool:
        return self.server.startswith(("http://", "https://"))


@dataclass
class EdgeSide:
    path: Path
    runtime: Any
    data: Dataset
    manifest: Manifest | None


def _describe(request: CompareRequest) -> ModelDescription:
    """Task, labels and preprocessing: from the local server model, else the first edge artifact."""
    if not request.server_is_url:
        found = model_description(Path(request.server))
        if found.task:
            return found
    for path in request.edge:
        found = model_description(path)
        if found.task:
            return found
    return ModelDescription()


def _load(
    path: Path,
    specs: list[Any],
    description: ModelDescription,
    limit: int | None,
    who: str,
    layout: dict[str, list[int]] | None = None,
) -> Dataset:
    try:
        data = load_dataset(
            path,
            Split.EVALUATION,
            specs,
            preprocessing=description.preprocessing,
            class_names=description.labels,
            layout=layout,
        )
    except DataError as exc:
        raise DataError(f"{who}: {exc.message}", hint=exc.hint or "give data shaped as this model's inputs") from exc
    return data.subset(limit) if limit else data


def _open_edges(request: CompareRequest, description: ModelDescription) -> list[EdgeSide]:
    from edgekit.runtimes import load_runtime

    sides = []
    for path in request.edge:
        runtime = load_runtime(path, threads=request.threads)
        manifest = load_manifest(path)
        layout = manifest.input_layout if manifest is not None else None
        data = _load(request.data, runtime.inputs, description, request.limit, f"edge artifact {path.name}", layout)
        sides.append(EdgeSide(path, runtime, data, manifest))
    return sides


@contextlib.contextmanager
def _server(request: CompareRequest, progress: Progress) -> Iterator[tuple[ModelServerClient, dict[str, Any]]]:
    """A client on the server: the URL given, or the local model served on a loopback port for
    the length of the comparison (so its latency includes a real HTTP round trip too)."""
    if request.server_is_url:
        with ModelServerClient(request.server) as client:
            client.connect()
            yield client, {"source": request.server, "url": client.url, "local": False, "size_bytes": None}
        return
    from edgekit.serve.app import create_app
    from edgekit.serve.model import ServedModel
    from edgekit.serve.server import BackgroundServer

    path = Path(request.server)
    process = psutil.Process()
    # What loading adds to this process: with TensorFlow imported already (the demo trained in
    # it) a small Keras model adds well under a megabyte; the report says so rather than "0 MB".
    framework_loaded = "tensorflow" in sys.modules
    rss_before = process.memory_info().rss
    served = ServedModel.load(path)
    load_rss_mb = (process.memory_info().rss - rss_before) / 2**20
    try:
        with BackgroundServer(create_app({served.name: served})) as server:
            url = f"{server.url}/v1/models/{served.name}"
            progress(f"serving {path.name} at {url} for the comparison")
            with ModelServerClient(url) as client:
                client.connect()
                yield (
                    client,
                    {
                        "source": str(path),
                        "url": url,
                        "local": True,
                        "runtime": served.runtime.name,
                        "size_bytes": size_of(path),
                        "load_rss_mb": round(load_rss_mb, 1),
                        "framework_preloaded": framework_loaded,
                    },
                )
    finally:
        served.close()


def _server_outputs(client: ModelServerClient, data: Dataset, batch: int) -> list[np.ndarray]:
    mapping = match_inputs(list(data.inputs), client.inputs, Path(data.origin).name)
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(data), batch):
        feeds = {mapping[k]: v[start : start + batch] for k, v in data.inputs.items() if k in mapping}
        for name, value in client.predict(feeds).outputs.items():
            chunks.setdefault(name, []).append(value)
    return [np.concatenate(v) for v in chunks.values()]


def _server_latency(client: ModelServerClient, data: Dataset, request: CompareRequest) -> dict[str, Any]:
    """Single-sample requests, one after another on a keep-alive connection, as a device sends them."""
    from edgekit.bench import summarize

    mapping = match_inputs(list(data.inputs), client.inputs, Path(data.origin).name)
    times, sent, received = [], [], []
    for i in range(REQUEST_WARMUP + request.requests):
        index = i % len(data)
        exchange = client.predict({mapping[k]: v[index : index + 1] for k, v in data.inputs.items() if k in mapping})
        if i >= REQUEST_WARMUP:
            times.append(exchange.elapsed_ms)
            sent.append(exchange.request_bytes)
            received.append(exchange.response_bytes)
    link = request.link
    with_link = [t + link.added_ms(s, r) for t, s, r in zip(times, sent, received, strict=True)]
    request_bytes, response_bytes = int(np.median(sent)), int(np.median(received))
    return {
        "measured": summarize(times),
        "with_link": summarize(with_link),
        "link": {
            "rtt_ms": link.rtt_ms,
            "uplink_mbps": link.uplink_mbps,
            "downlink_mbps": link.downlink_mbps,
            "transfer_ms": round(link.transfer_ms(request_bytes, response_bytes), 3),
            "described": link.describe(),
        },
        "request_bytes": request_bytes,
        "response_bytes": response_bytes,
    }


def _device_prediction(
    path: Path,
    runtime_name: str,
    device: tuple[Any, str | None] | None,
    threads: int | None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """``device``: the profile and runtime ``parse_device`` read once from --device."""
    if device is None:
        return None, "no --device given"
    from edgekit.predict import predict
    from edgekit.predict.graph import analyze

    profile, device_runtime = device
    try:
        prediction = predict(
            analyze(path, runtime_name, shapes), profile, engine=runtime_name, threads=threads, runtime=device_runtime
        )
    except DeviceError as exc:
        return None, exc.one_line()
    return prediction.to_dict(), ""


def _edge_report(
    side: EdgeSide,
    server_out: list[np.ndarray],
    server: dict[str, Any],
    request: CompareRequest,
    desc: ModelDescription,
    device: tuple[Any, str | None] | None,
) -> dict[str, Any]:
    from edgekit.bench import BenchSettings, measure
    from edgekit.runtimes import load_runtime
    from edgekit.runtimes.base import run_batched

    outputs = run_batched(side.runtime, side.data.inputs, whole=side.data.whole)  # keyed by input name
    edge_out = [outputs[spec.name] for spec in side.runtime.outputs]
    quality = compare_outputs(
        desc.task, side.data, server_out, edge_out, labels=desc.labels,
        postprocessing=desc.postprocessing,
    )  # fmt: skip
    runtime_name = side.runtime.name
    shapes = side.data.sample_shapes()  # the edge runs at the data's own sizes: they are on the record
    measured = measure(
        lambda: load_runtime(side.path, runtime_name, threads=request.threads, shapes=shapes),
        BenchSettings(runs=request.runs, warmup=10),
        data=side.data,
    )
    predicted, why_not = _device_prediction(side.path, runtime_name, device, request.threads, shapes)
    edge_ms = predicted["latency_ms"] if predicted else measured["p50_ms"]
    latency = server["latency"]
    break_even = BreakEven(latency["measured"]["p50_ms"], latency["link"]["transfer_ms"], edge_ms)
    manifest = side.manifest
    return {
        "artifact": str(side.path),
        "format": manifest.format if manifest is not None else side.path.suffix.lstrip("."),
        "precision": manifest.precision if manifest is not None else None,
        "runtime": runtime_name,
        "size_bytes": artifact_size(side.path),
        "inputs": [
            {
                "name": spec.name,
                "shape": list(shapes[spec.name]),
                "dtype": spec.float_dtype,
                "origin": "data",
                "declared": list(spec.shape),
                "batch_defaulted": False,
            }
            for spec in side.runtime.inputs
            if spec.name in shapes
        ],
        "quality": quality,
        "latency": {
            "here": measured,
            "device": predicted,
            "device_note": why_not,
            "compared_ms": round(edge_ms, 3),
            "compared_basis": f"predicted on {request.device}" if predicted else "measured here",
        },
        "memory": {
            "here_load_rss_mb": measured["load_rss_mb"],
            "device": None if predicted is None else {**predicted["memory_mb"], "fits": predicted["fits_memory"]},
        },
        "break_even": break_even.to_dict(),
        "verdict": break_even.verdict(request.link.rtt_ms),
    }


def compare(request: CompareRequest, progress: Progress = lambda _line: None) -> dict[str, Any]:
    """Run the comparison; returns the compare JSON and writes the report when asked."""
    request.validate()
    device = None
    if request.device is not None:
        from edgekit.predict import parse_device

        device = parse_device(request.device)  # an unknown device fails before anything is run
    description = _describe(request)
    edges = _open_edges(request, description)
    try:
        with _server(request, progress) as (client, server):
            data = _load(request.data, client.inputs, description, request.limit, f"server {client.url}")
            progress(f"server: {len(data)} samples in requests of {request.batch}")
            server_out = _server_outputs(client, data, request.batch)
            progress(f"server: timing {request.requests} single-sample requests")
            server["latency"] = _server_latency(client, data, request)
        server["outputs"] = [list(o.shape[1:]) for o in server_out]
        results = []
        for side in edges:
            progress(f"edge: {side.path.name} on {side.runtime.name}: outputs, {request.runs} timed runs")
            results.append(_edge_report(side, server_out, server, request, description, device))
    finally:
        for side in edges:
            side.runtime.close()
    document = {
        "server": server,
        "edge": results,
        "agreement": {Path(r["artifact"]).name: r["quality"]["top1_agreement"] for r in results},
        "report": None,
        "task": description.task,
        "data": {"source": str(request.data), "samples": len(data), "labelled": data.labels is not None},
        "device": request.device,
        "link": server["latency"]["link"],
        "environment": {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "edgekit": __version__,
            "machine": platform.machine(),
            "processor": machine_name(),
        },
    }
    if request.report is not None:
        from edgekit.compare.report import render_html

        with atomic_file(request.report, force=request.force) as staging:
            staging.write_text(render_html(document), encoding="utf-8")
        document["report"] = str(request.report)
    return document
