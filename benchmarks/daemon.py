"""The inference daemon's figures (issue 6), measured in one run against a Mosquitto of its own.

    python benchmarks/daemon.py [--frames 600] [--soak 20000] [--no-write]

1. MobileNetV2 (weights=None) as a 1-thread TFLite classifier on a generated 640×480 video read
   as fast as possible: end-to-end results per second over the model-only invoke rate measured
   in the same run, each run bracketed by model-only runs (goal ≥ 0.95, issue 17).
2. The shapes detector (int8 TFLite) on the same video: results per second and the mean time
   per stage (capture, preprocess, inference, post-process, publish).
3. Publish → receive latency through the daemon's outbox and MQTT link on loopback Mosquitto at
   QoS 1 (goal p99 ≤ 5 ms).
4. A soak of ``--soak`` frames (the detector, looping video) in a separate process: resident
   memory after warm-up against the end (goal: growth ≤ 5 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from benchmarks.results_file import publish  # noqa: E402
from edgekit.bench import BenchSettings, measure  # noqa: E402
from edgekit.converters.pipeline import ConvertRequest, convert  # noqa: E402
from edgekit.daemon.config import DaemonConfig  # noqa: E402
from edgekit.daemon.service import Daemon  # noqa: E402
from edgekit.examples import train_example  # noqa: E402
from edgekit.examples.shapes_video import write_shapes_video  # noqa: E402
from edgekit.formats import Precision, get_format  # noqa: E402
from edgekit.runtimes import load_runtime  # noqa: E402
from tools.mqtt_brokers import Mosquitto  # noqa: E402


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_daemon(
    model: Path, video: Path, port: int, frames: int, work: Path, device: str, inference: str = "in-process"
) -> dict:
    config = DaemonConfig(
        model=model,
        source=str(video),
        loop=True,
        max_frames=frames,
        broker=f"mqtt://127.0.0.1:{port}",
        device_id=device,
        threads=1,
        buffer=work / f"{device}.sqlite",
        stats_interval=60,
        inference=inference,
    )
    return Daemon(config).run()


def model_only_rate(model: Path, runs: int) -> float:
    measured = measure(lambda: load_runtime(model, "tflite", threads=1), BenchSettings(runs=runs, warmup=20))
    return 1000.0 / measured["mean_ms"]


# Issue 6 accepted 0.90; issue 17 asks the pipeline to deliver 0.95 of the model-only rate.
PIPELINE_GOAL = 0.95


def pipeline_vs_model(
    mobilenet: Path, video: Path, port: int, frames: int, work: Path, inference: str = "in-process"
) -> list[str]:
    """Five pairs, each an end-to-end run bracketed by a model-only run before and after (as many
    invokes as the run has results): the pair's reference is the mean of the two, so a machine
    that speeds up or slows down during the pair moves both sides of the ratio alike."""
    rows = [
        "| pair | model-only before invokes/s | end-to-end results/s | model-only after invokes/s | ratio |",
        "|---|---|---|---|---|",
    ]
    ratios = []
    for pair in range(5):
        before = model_only_rate(mobilenet, frames)
        summary = run_daemon(mobilenet, video, port, frames, work, f"mnv2-{pair}", inference)
        after = model_only_rate(mobilenet, frames)
        ratio = summary["results_per_s"] / ((before + after) / 2)
        ratios.append(ratio)
        rows.append(f"| {pair + 1} | {before:.1f} | {summary['results_per_s']:.1f} | {after:.1f} | {ratio:.3f} |")
        log(rows[-1])
    median = statistics.median(ratios)
    met = "yes" if median >= PIPELINE_GOAL else "NO"
    rows.append(f"| **median** | | | | **{median:.3f}** ({met}, goal ≥ {PIPELINE_GOAL:.2f}) |")
    return rows


def detector_stages(detector: Path, video: Path, port: int, frames: int, work: Path) -> list[str]:
    summary = run_daemon(detector, video, port, frames, work, "shapes")
    stages = summary["stage_ms"]
    total = sum(v for k, v in stages.items() if k not in ("capture", "preprocess"))
    rows = [
        f"End-to-end {summary['results_per_s']:.1f} results/s over {summary['results']} results "
        f"({summary['skipped_frames']} frames skipped: a recording is read frame by frame as the model takes them).",
        "",
        "| stage | mean ms | share of the inference thread |",
        "|---|---|---|",
        f"| capture (decode a 640×480 frame; its own thread) | {stages['capture']:.3f} | — |",
    ]
    rows.append(
        f"| preprocess (capture thread, overlapped with the previous inference) | {stages['preprocess']:.3f} | — |"
    )
    for stage in ("inference", "postprocess", "publish"):
        rows.append(f"| {stage} | {stages[stage]:.3f} | {stages[stage] / total:.0%} |")
    log("\n".join(rows))
    return rows


def publish_latency(port: int, work: Path, count: int = 2000) -> list[str]:
    import paho.mqtt.client as mqtt

    from edgekit.daemon.broker_address import BrokerSettings
    from edgekit.daemon.mqtt import DaemonLink
    from edgekit.daemon.outbox import OfflineBuffer

    received: list[float] = []
    ready = threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    subscriber.on_connect = lambda c, u, f, rc, p: c.subscribe("edgekit/latency/results", qos=1)
    subscriber.on_subscribe = lambda *a: ready.set()
    subscriber.on_message = lambda c, u, m: received.append(time.perf_counter() - json.loads(m.payload)["sent"])
    subscriber.connect("127.0.0.1", port)
    subscriber.loop_start()
    ready.wait(10)
    outbox = OfflineBuffer(work / "latency.sqlite")
    link = DaemonLink(BrokerSettings(url=f"mqtt://127.0.0.1:{port}"), "latency", outbox, lambda payload: None)
    link.start()
    link.connected.wait(10)
    for i in range(count):
        outbox.put("edgekit/latency/results", json.dumps({"seq": i, "sent": time.perf_counter()}).encode(), qos=1)
        link.notify()
        time.sleep(0.002)  # a 500-results/s camera, far above what the models here reach
    deadline = time.monotonic() + 20
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    link.stop()
    subscriber.disconnect()
    subscriber.loop_stop()
    ms = np.asarray(received) * 1000
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    row = (
        f"| {count} results, QoS 1, outbox → MQTT link → Mosquitto → subscriber | {len(received)} | {p50:.2f} | "
        f"{np.percentile(ms, 90):.2f} | **{p99:.2f}** | {'yes' if p99 <= 5 else 'NO'} |"
    )
    log(row)
    return ["| path | received | p50 ms | p90 ms | p99 ms | ≤ 5 ms |", "|---|---|---|---|---|---|", row]


def soak(detector: Path, video: Path, port: int, frames: int, work: Path) -> list[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekit",
            "run",
            "--model",
            str(detector),
            "--source",
            str(video),
            "--loop",
            "--broker",
            f"mqtt://127.0.0.1:{port}",
            "--device-id",
            "soak",
            "--max-frames",
            str(frames),
            "--threads",
            "1",
            "--buffer",
            str(work / "soak.sqlite"),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    watched = psutil.Process(process.pid)
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    while process.poll() is None:
        try:
            samples.append((time.monotonic() - start, watched.memory_info().rss / 2**20))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    out, _ = process.communicate()
    summary = json.loads(out)
    duration = samples[-1][0]
    warm = next(rss for t, rss in samples if t >= min(10.0, duration * 0.2))
    end = statistics.median(rss for _, rss in samples[-5:])
    peak = max(rss for _, rss in samples)
    growth = (end - warm) / warm * 100
    log(f"soak: {summary['results']} results in {duration:.0f} s; RSS {warm:.1f} → {end:.1f} MB (peak {peak:.1f})")
    return [
        "| frames | seconds | RSS after warm-up MB | RSS at the end MB | peak MB | growth | ≤ 5 % |",
        "|---|---|---|---|---|---|---|",
        f"| {summary['results']} | {duration:.0f} | {warm:.1f} | {end:.1f} | {peak:.1f} | **{growth:.2f} %** "
        f"| {'yes' if growth <= 5 else 'NO'} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600, help="results per throughput measurement")
    parser.add_argument("--soak", type=int, default=20_000, help="frames in the soak run")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    parser.add_argument("--only-pipeline", action="store_true", help="only part 1, printed (implies --no-write)")
    parser.add_argument(
        "--inference", choices=("in-process", "process"), default="in-process", help="where the daemon runs the model"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-daemon-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        try:
            import keras

            video = write_shapes_video(work / "shapes.avi", frames=300, width=640, height=480)
            keras.applications.MobileNetV2(weights=None).save(work / "mnv2.keras")
            mobilenet = Path(
                convert(
                    ConvertRequest(
                        source=work / "mnv2.keras",
                        target=get_format("tflite"),
                        precision=Precision.FP32,
                        out=work / "mnv2.tflite",
                        task="classification",
                        preprocessing={
                            "kind": "image",
                            "size": [224, 224],
                            "color": "rgb",
                            "scale": 1 / 127.5,
                            "offset": -1.0,
                            "resize": "linear",
                            "layout": "NHWC",
                            "dtype": "float32",
                        },
                    )
                )["artifact"]
            )
            if args.only_pipeline:
                for row in pipeline_vs_model(mobilenet, video, broker.port, args.frames, work, args.inference):
                    print(row)
                return
            shapes = Path(train_example("shapes-detector", work / "shapes", seed=0)["out"])
            detector = Path(
                convert(
                    ConvertRequest(
                        source=shapes / "model.keras",
                        target=get_format("tflite"),
                        precision=Precision.INT8,
                        out=work / "shapes_int8.tflite",
                    )
                )["artifact"]
            )
            throughput = pipeline_vs_model(mobilenet, video, broker.port, args.frames, work, args.inference)
            stages = detector_stages(detector, video, broker.port, max(args.frames, 2000), work)
            latency = publish_latency(broker.port, work)
            memory = soak(detector, video, broker.port, args.soak, work)
        finally:
            broker.stop()
    body = [
        "MobileNetV2 (weights=None) fp32 TFLite, 1 inference thread, 640×480 video read as fast as possible: "
        "end-to-end results per second against the model-only invoke rate (`edgekit bench` timing) "
        "measured just before and just after it:",
        "",
        *throughput,
        "",
        "shapes-detector int8 TFLite on the same video, per-stage breakdown:",
        "",
        *stages,
        "",
        "Publish → receive on loopback Mosquitto:",
        "",
        *latency,
        "",
        "Soak (shapes-detector int8, looping video, its own process):",
        "",
        *memory,
    ]
    command = (
        "python benchmarks/daemon.py"
        + (f" --frames {args.frames}" if args.frames != 600 else "")
        + (f" --soak {args.soak}" if args.soak != 20_000 else "")
    )
    publish("daemon", "Inference daemon (issue 6)", command, body, write=not args.no_write)


if __name__ == "__main__":
    main()
