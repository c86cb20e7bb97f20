"""``edgekit demo``: the whole story so far, end to end, on this machine."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from edgekit.cli.output import emit_json, human_bytes, log, stdout
from edgekit.errors import BrokerError
from edgekit.examples import get_example, train_example

DEMO_EXAMPLE = "digits-cnn"
DEMO_MAX_DROP = 1.0  # accuracy points the int8 edge model may lose
DETECTOR_EPOCHS = 8  # enough for the detector to find the shapes; the full 14 take two minutes
DAEMON_FRAMES = 150


def _broker_port() -> tuple[int, object | None]:
    """The local Mosquitto if one answers on 1883, else an embedded broker on a free port."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return 1883, None
    except OSError:
        pass
    from edgekit.daemon.embedded_broker import EmbeddedBroker

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return port, EmbeddedBroker("127.0.0.1", port).start()


class _DeliveryCounter:
    """A subscriber on the demo's results topic: the proof that the results went through the broker."""

    def __init__(self, port: int, topic: str) -> None:
        import threading

        from edgekit.daemon.mqtt_protocol import connect_with_fallback, new_client

        self.seqs: dict[str, set[int]] = {}
        self._subscribed = threading.Event()
        self._lock = threading.Lock()

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            import json

            try:
                result = json.loads(message.payload)
                with self._lock:
                    self.seqs.setdefault(result["run_id"], set()).add(int(result["seq"]))
            except (ValueError, KeyError, TypeError):
                pass  # not a result of ours

        def make_client(protocol: int) -> Any:
            client = new_client(protocol)
            client.on_connect = on_connect
            client.on_subscribe = lambda *args: self._subscribed.set()
            client.on_message = on_message
            return client

        self.client = connect_with_fallback(make_client, "127.0.0.1", port)
        if not self._subscribed.wait(10):
            self.close()
            raise BrokerError(f"the broker on port {port} did not confirm the demo's subscription")

    def delivered(self, run_id: str, expected: int, wait_s: float = 10.0) -> int:
        import time

        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with self._lock:
                count = len(self.seqs.get(run_id, ()))
            if count >= expected:
                return count
            time.sleep(0.05)
        return count

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _daemon_step(workdir: Path, force: bool) -> dict[str, Any]:
    """Train the detector, convert it to int8 and run the daemon on a generated video over MQTT."""
    from edgekit.daemon.config import DaemonConfig
    from edgekit.daemon.service import Daemon
    from edgekit.examples.shapes_video import write_shapes_video

    shapes = train_example(
        "shapes-detector",
        workdir / "shapes",
        epochs=DETECTOR_EPOCHS,
        force=force,
        progress=lambda line: log(f"          {line}"),
    )
    edge = _convert_step(workdir / "shapes", "tflite", "int8", max_drop=None)
    video = write_shapes_video(workdir / "shapes.avi", frames=DAEMON_FRAMES)
    port, embedded = _broker_port()
    log(f"          broker: {'Mosquitto on 127.0.0.1:1883' if embedded is None else f'embedded on port {port}'}")
    shown = 0

    def show(result: dict[str, Any]) -> None:
        nonlocal shown
        if result["seq"] % 15 == 0 and shown < 8:
            shown += 1
            found = ", ".join(f"{p['label']} {p['score']:.2f}" for p in result["predictions"]) or "nothing"
            where = f"frame {result['frame_id']:>4}  seq {result['seq']:>4}"
            log(f"          {where}  {result['latency_ms']:5.1f} ms  {found}")

    config = DaemonConfig(
        model=Path(edge["artifact"]),
        source=str(video),
        broker=f"mqtt://127.0.0.1:{port}",
        device_id="demo",
        buffer=workdir / "outbox.sqlite",
        stats_interval=2.0,
        require_broker=True,
    )
    which = "Mosquitto on 127.0.0.1:1883" if embedded is None else f"embedded broker on port {port}"
    try:
        counter = _DeliveryCounter(port, "edgekit/demo/results")
        try:
            daemon = Daemon(config, on_result=show)
            summary = daemon.run()
            delivered = counter.delivered(daemon.run_id, summary["results"])
        finally:
            counter.close()
    finally:
        if embedded is not None:
            embedded.stop()  # type: ignore[attr-defined]
    if delivered < summary["results"]:
        raise BrokerError(
            f"the demo's daemon produced {summary['results']} results but only {delivered} arrived through the {which}",
            hint="rerun with --debug to see the broker's and the daemon's log",
        )
    summary["delivered"] = delivered
    return {
        "train": shapes,
        "convert": edge,
        "daemon": summary,
        "broker_port": port,
        "embedded_broker": embedded is not None,
    }


def _convert_step(model_dir: Path, to: str, quant: str, max_drop: float | None = DEMO_MAX_DROP) -> dict[str, Any]:
    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.formats import get_format, parse_precision

    return convert(
        ConvertRequest(
            source=model_dir / "model.keras",
            target=get_format(to),
            precision=parse_precision(quant),
            max_drop=max_drop,
        ),
        progress=lambda line: log(f"          {line}"),
    )


PREDICTED_DEVICES = ("rpi4", "rpi5", "pixel4")


def _predictions(artifact: Path) -> list[dict[str, Any]]:
    """The edge model predicted on the devices it is meant for, with no device on the desk."""
    from edgekit.predict import predict
    from edgekit.predict.graph import analyze
    from edgekit.predict.profiles import load_profile

    graph = analyze(artifact)
    return [predict(graph, load_profile(name), engine="tflite").to_dict() for name in PREDICTED_DEVICES]


DEMO_RTT_MS = 40.0  # a phone on 4G to a cloud region: what the report's link line assumes
DEMO_UPLINK_MBPS = 5.0


def _compare_step(model_dir: Path, edge: Path, report: Path) -> dict[str, Any]:
    """The Keras model served over HTTP (TF Serving's API) against the int8 edge model."""
    from edgekit.compare.link import Link
    from edgekit.compare.run import CompareRequest, compare

    return compare(
        CompareRequest(
            server=str(model_dir / "model.keras"),
            edge=[edge],
            data=model_dir / "data.npz",
            device="rpi4",
            link=Link(rtt_ms=DEMO_RTT_MS, uplink_mbps=DEMO_UPLINK_MBPS),
            report=report,
            force=True,
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
    """The whole story on this machine: train the digit classifier on the "server", convert it for the edge
    (TFLite int8, OpenVINO fp16) and predict it on devices, run the camera daemon (the shapes detector on a
    recording, over MQTT: the local Mosquitto or an embedded broker), and compare server and edge in an HTML
    report."""
    spec = get_example(DEMO_EXAMPLE)
    workdir = Path(out) if out else Path(tempfile.mkdtemp(prefix="edgekit-demo-"))
    model_dir = workdir / "digits"
    log("edgekit demo — from a server-trained model to a checked edge artifact")
    log(f"step 1/5  server: train {spec.name} ({spec.lesson}) on scikit-learn's bundled digits")
    trained = train_example(DEMO_EXAMPLE, model_dir, force=force, progress=lambda line: log(f"          {line}"))
    log(f"step 2/5  convert for the edge: TFLite int8, calibrated on the training split, gate {DEMO_MAX_DROP} pt")
    edge = _convert_step(model_dir, "tflite", "int8")
    edge["predicted"] = _predictions(Path(edge["artifact"]))
    log("step 3/5  convert for an x86 box: OpenVINO IR fp16")
    x86 = _convert_step(model_dir, "openvino", "fp16")
    log("step 4/5  on the device: the shapes detector, int8, reading a camera recording and publishing over MQTT")
    camera = _daemon_step(workdir, force)
    log(f"step 5/5  server or edge? the Keras model served over HTTP against the int8 edge model, rpi4, "
        f"{DEMO_RTT_MS:g} ms RTT, {DEMO_UPLINK_MBPS:g} Mbit/s uplink")  # fmt: skip
    versus = _compare_step(model_dir, Path(edge["artifact"]), workdir / "compare.html")
    steps = [
        {"step": "train", **trained},
        {"step": "convert", **edge},
        {"step": "convert", **x86},
        {"step": "daemon", **camera},
        {"step": "compare", **versus},
    ]
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
        if "predicted" in report:
            devices = ", ".join(
                f"{p['device']} {p['latency_ms']:.2f} ms ({p['low_ms']:.2f}–{p['high_ms']:.2f})"
                for p in report["predicted"]
            )
            threads = report["predicted"][0]["threads"]
            stdout.print(f"   predicted on devices, {threads} threads (`edgekit bench --device`): {devices}")
    daemon = camera["daemon"]
    stages = daemon["stage_ms"]
    stdout.print(
        f"4. Daemon: shapes detector int8 on a 640×480 recording → MQTT edgekit/demo/results "
        f"({'embedded broker' if camera['embedded_broker'] else 'local Mosquitto'}): {daemon['results']} results "
        f"at {daemon['results_per_s']:.0f}/s, {daemon['skipped_frames']} stale frames skipped, "
        f"p50 {daemon['latency_p50_ms']:.1f} ms, {daemon['delivered']} delivered to a subscriber; per result: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in stages.items())
    )
    served, (int8,) = versus["server"]["latency"], versus["edge"]
    quality = int8["quality"]
    stdout.print(
        f"5. Server or edge: Keras over HTTP answers in {served['measured']['p50_ms']:.2f} ms here, "
        f"{served['with_link']['p50_ms']:.1f} ms over {served['link']['described']}; the int8 model "
        f"{int8['latency']['compared_ms']:.2f} ms {int8['latency']['compared_basis']}, agreeing on "
        f"{quality['top1_agreement']:.1%} (drop {quality['metric']['drop']:.2f} pt): {int8['verdict']}.\n"
        f"   report: {versus['report']}"
    )
    stdout.print(
        "Every artifact has a manifest beside it (*.manifest.json): input layout and scaling, quantization "
        "parameters, labels, hashes, tool versions and the figures above — what a device needs to run it.\n"
        "Next: `edgekit examples list`, `edgekit convert DIR/model.keras --to onnx --quant auto --max-drop 1`, "
        "`edgekit bench DIR/model_int8.tflite --threads 1,2`, `edgekit serve DIR/model.keras`, "
        "`edgekit run --model M --source 0 --broker mqtt://HOST` and `edgekit watch --broker mqtt://HOST`."
    )
