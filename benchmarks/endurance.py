"""The daemon over weeks (issue 17), measured in one run against a Mosquitto of its own.

    python benchmarks/endurance.py [--cut 60] [--kills 20] [--soak-minutes 60] [--no-write]

1. The outbox's ``put`` at 100 and at 100,000 waiting rows, side by side with the
   ``SELECT COUNT(*)`` a put used to run at each size (medians of five alternating rounds).
2. A network cut of ``--cut`` seconds at full speed (the shapes detector int8 on a looping
   recording, through a proxy the benchmark cuts): results produced in the last 10 s of the cut
   over the first 10 s (goal ≥ 0.9), whether every result arrived in order afterwards,
   duplicates (goal ≤ 1 %), and the drain rate after the cut.
3. ``--kills`` SIGKILLs of the daemon at random moments (while the broker is reachable, so
   mid-put, mid-replay and mid-checkpoint, and while it is cut): results lost among those the
   outbox had accepted (goal 0) and outboxes failing ``PRAGMA integrity_check`` (goal 0).
4. A soak of ``--soak-minutes`` at a camera-like 30 frames/s with a broker outage of a twelfth
   of it in the middle (5 minutes in an hour): resident memory growth after warm-up (goal
   ≤ 5 %), open file descriptors, and the p99 latency of the last tenth against the first.

Results are counted from what a subscriber received (each carries its run_id, seq and capture
time), not from what the daemon says of itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from benchmarks.results_file import publish  # noqa: E402
from edgekit.daemon.outbox import OfflineBuffer  # noqa: E402
from tools.mqtt_brokers import CuttableProxy, Mosquitto, Recorder  # noqa: E402

PAYLOAD = b'{"device_id": "cam", "run_id": "0123456789ab", "seq": 0, "predictions": []}' + b" " * 200


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- 1. the outbox's put --------------------------------------------------------------------


def _put_seconds(box: OfflineBuffer, count: int) -> float:
    """Median seconds per put, at a constant number of waiting rows (each put's oldest removed)."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        box.put("edgekit/cam/results", PAYLOAD)
        times.append(time.perf_counter() - started)
        box.remove(box.after(0, 1)[0].id)
    return statistics.median(times)


def _count_seconds(path: Path, count: int = 50) -> float:
    connection = sqlite3.connect(path)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.execute("SELECT COUNT(*) FROM outbox").fetchone()
        times.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(times)


def outbox_cost(work: Path, rounds: int = 5) -> list[str]:
    boxes = {}
    for rows in (100, 100_000):
        box = OfflineBuffer(work / f"outbox-{rows}.sqlite", max_messages=200_000)
        for _ in range(rows):
            box.put("edgekit/cam/results", PAYLOAD)
        boxes[rows] = box
    put: dict[int, list[float]] = {100: [], 100_000: []}
    for _ in range(rounds):
        for rows, box in boxes.items():
            put[rows].append(_put_seconds(box, 2000))
    counts = {rows: _count_seconds(box.path) for rows, box in boxes.items()}
    for box in boxes.values():
        box.close()
    small, large = statistics.median(put[100]), statistics.median(put[100_000])
    log(f"outbox put: {small * 1e6:.1f} µs at 100 rows, {large * 1e6:.1f} µs at 100,000 ({large / small:.2f}×)")
    return [
        "| waiting rows | put µs (median of 5 rounds × 2000) | a COUNT(*) at that size µs (what each put ran before) |",
        "|---|---|---|",
        f"| 100 | {small * 1e6:.1f} | {counts[100] * 1e6:.1f} |",
        f"| 100,000 | {large * 1e6:.1f} | {counts[100_000] * 1e6:.1f} |",
        f"| ratio | **{large / small:.2f}×** | {counts[100_000] / counts[100]:.0f}× |",
    ]


# -- daemons as processes ---------------------------------------------------------------------


def start_daemon(model: Path, video: Path, port: int, device: str, outbox: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [
            sys.executable, "-m", "edgekit", "run", "--model", str(model), "--source", str(video), "--loop",
            "--broker", f"mqtt://127.0.0.1:{port}", "--device-id", device, "--threads", "1",
            "--buffer", str(outbox), "--stats-interval", "1", *extra,
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def first_arrivals(results: list[dict[str, Any]]) -> tuple[dict[str, list[int]], int]:
    """Per run, the seqs in the order they first arrived; and how many arrivals were repeats."""
    seen: set[tuple[str, int]] = set()
    order: dict[str, list[int]] = {}
    duplicates = 0
    for result in results:
        key = (result["run_id"], result["seq"])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        order.setdefault(result["run_id"], []).append(result["seq"])
    return order, duplicates


def wait_drained(recorder: Recorder, since: float, timeout: float = 900.0) -> float:
    """Wait until the daemon's stats (sent only while connected) say the outbox is back to its
    steady level; the moment they first did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s["ts"] >= since and s["buffered"] <= 100 for s in recorder.of("stats")):
            return time.monotonic()
        time.sleep(0.1)
    raise RuntimeError(f"the outbox did not drain within {timeout:g} s")


def wait_quiet(recorder: Recorder, seconds: float = 3.0, timeout: float = 600.0) -> float:
    """Wait until no result has arrived for ``seconds``; the time the last one arrived."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(recorder.results())
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change >= seconds:
            return last_change
        time.sleep(0.1)
    return last_change


# -- 2. a long network cut --------------------------------------------------------------------


def network_cut(detector: Path, video: Path, broker: Mosquitto, work: Path, cut_s: float) -> list[str]:
    proxy = CuttableProxy(broker.port)
    proxy.restore()
    recorder = Recorder(broker.port, "cut")
    daemon = start_daemon(detector, video, proxy.port, "cut", work / "cut.sqlite")
    try:
        assert recorder.wait_for(lambda r: len(r.results()) >= 200, timeout=120), "the daemon did not start"
        time.sleep(5)  # steady state
        cut_at = time.time()
        proxy.cut()
        time.sleep(cut_s)
        restored_at, restored_mono = time.time(), time.monotonic()
        proxy.restore()
        drained_mono = wait_drained(recorder, restored_at)
        stop(daemon)
        wait_quiet(recorder)
    finally:
        stop(daemon)
        proxy.close()
    results = recorder.results()
    recorder.close()
    order, duplicates = first_arrivals(results)
    (run,) = order.values()
    in_order = run == sorted(run)
    complete = sorted(run) == list(range(len(run)))
    unique = list({(r["run_id"], r["seq"]): r for r in results}.values())
    first = sum(1 for r in unique if cut_at <= r["ts"] < cut_at + 10)
    last = sum(1 for r in unique if restored_at - 10 <= r["ts"] < restored_at)
    during = sum(1 for r in unique if cut_at <= r["ts"] < restored_at)
    drain_s = max(drained_mono - restored_mono, 1e-3)
    ratio = last / max(first, 1)
    log(f"cut: first 10 s {first}, last 10 s {last} ({ratio:.2f}×); {during} buffered, drained in {drain_s:.1f} s")
    return [
        "| cut s | results in the first 10 s | in the last 10 s | last ÷ first | results during the cut "
        "| all delivered, in order | duplicates | drained in s | drain rate results/s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {cut_s:g} | {first} | {last} | **{ratio:.2f}** ({'≥' if ratio >= 0.9 else 'below'} 0.9) | {during} "
        f"| {'yes' if complete and in_order else 'NO'} | {duplicates} ({duplicates / max(len(run), 1) * 100:.2f} %) "
        f"| {drain_s:.1f} | {during / drain_s:.0f} |",
    ]


# -- 3. SIGKILL at random moments -------------------------------------------------------------


def _outbox_rows(path: Path) -> tuple[str, list[dict[str, Any]]]:
    connection = sqlite3.connect(path)
    try:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        rows = [json.loads(payload) for (payload,) in connection.execute("SELECT payload FROM outbox ORDER BY id")]
    finally:
        connection.close()
    return integrity, [r for r in rows if isinstance(r, dict) and "seq" in r]


def _newest_rows(path: Path) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path, timeout=5)
    try:
        rows = connection.execute("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet: the daemon was still loading its model
    finally:
        connection.close()
    found = [json.loads(payload) for (payload,) in rows]
    return [r for r in found if isinstance(r, dict) and "seq" in r]


def kills(detector: Path, video: Path, broker: Mosquitto, work: Path, count: int) -> list[str]:
    rng = random.Random(17)
    proxy = CuttableProxy(broker.port)
    recorder = Recorder(broker.port, "kill")
    outbox = work / "kill.sqlite"
    accepted: dict[str, int] = {}  # run → the highest seq known to have been accepted by the outbox
    corrupt = 0
    moments = {"connected": 0, "cut": 0, "just reconnected": 0}
    try:
        for _ in range(count):
            moment = rng.choice(list(moments))
            moments[moment] += 1
            (proxy.restore if moment != "cut" else proxy.cut)()
            daemon = start_daemon(detector, video, proxy.port, "kill", outbox)
            time.sleep(rng.uniform(2.5, 5.0))  # the model loads in about 2 s: most kills land mid-run
            if moment == "just reconnected":
                proxy.cut()
                time.sleep(rng.uniform(0.5, 1.5))
                proxy.restore()  # replay of what the cut buffered starts now
                time.sleep(rng.uniform(0.0, 0.5))
            # What the outbox had accepted a moment before the kill, read by another connection:
            # committed, so it must survive whatever the kill interrupts next.
            for row in _newest_rows(outbox):
                accepted[row["run_id"]] = max(accepted.get(row["run_id"], -1), row["seq"])
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            integrity, _ = _outbox_rows(outbox)
            corrupt += integrity != "ok"
        proxy.restore()
        final = start_daemon(detector, video, proxy.port, "kill", outbox)
        wait_drained(recorder, time.time())
        stop(final)
        wait_quiet(recorder)
        integrity, rows = _outbox_rows(outbox)
        corrupt += integrity != "ok"
    finally:
        proxy.close()
    results = recorder.results()
    recorder.close()
    order, duplicates = first_arrivals(results)
    lost = 0
    for run, highest in accepted.items():
        got = set(order.get(run, []))
        lost += sum(1 for seq in range(highest + 1) if seq not in got)
    delivered = sum(len(v) for v in order.values())
    log(f"kills: {count}, {delivered} results delivered, {lost} lost, {corrupt} corrupt outboxes")
    return [
        "| SIGKILLs | moments (connected / cut / just reconnected) | runs | results accepted and delivered "
        "| lost among those accepted before each kill | corrupt outboxes | left in the outbox |",
        "|---|---|---|---|---|---|---|",
        f"| {count} | {moments['connected']} / {moments['cut']} / {moments['just reconnected']} | {len(accepted)} "
        f"| {delivered} | **{lost}** | **{corrupt}** | {len(rows)} |",
    ]


# -- 4. a soak with an outage -----------------------------------------------------------------


def soak(detector: Path, video: Path, broker: Mosquitto, work: Path, minutes: float) -> list[str]:
    duration = minutes * 60
    proxy = CuttableProxy(broker.port)
    proxy.restore()
    recorder = Recorder(broker.port, "soak")
    daemon = start_daemon(detector, video, proxy.port, "soak", work / "soak.sqlite", "--max-fps", "30")
    watched = psutil.Process(daemon.pid)
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    outage = (duration * 11 / 24, duration * 13 / 24)  # a twelfth of the run, in the middle
    cut = False
    try:
        while (now := time.monotonic() - start) < duration:
            if not cut and outage[0] <= now < outage[1]:
                proxy.cut()
                cut = True
            elif cut and now >= outage[1]:
                proxy.restore()
                cut = False
            samples.append((now, watched.memory_info().rss / 2**20, watched.num_fds()))
            time.sleep(1.0)
        stop(daemon)
        wait_quiet(recorder)
    finally:
        stop(daemon)
        proxy.close()
    results = recorder.results()
    recorder.close()
    order, duplicates = first_arrivals(results)
    first_ts = min(r["ts"] for r in results)
    tenth = duration / 10

    def p99(since: float, until: float) -> float:
        window = [r["latency_ms"] for r in results if since <= r["ts"] - first_ts < until]
        return float(np.percentile(window, 99)) if window else float("nan")

    early, late = p99(0, tenth), p99(duration - tenth, duration)
    warm_at = min(60.0, duration * 0.1)
    warm = statistics.median(rss for t, rss, _ in samples if warm_at <= t < warm_at + 30)
    end = statistics.median(rss for _, rss, _ in samples[-30:])
    growth = (end - warm) / warm * 100
    fds = [n for t, _, n in samples if t >= warm_at]
    complete = all(sorted(v) == list(range(len(v))) for v in order.values())
    log(f"soak: RSS {warm:.1f} → {end:.1f} MB ({growth:+.2f} %), fds {min(fds)}–{max(fds)}")
    log(f"soak: p99 {early:.2f} → {late:.2f} ms")
    return [
        "| minutes | outage | results | all delivered | RSS after warm-up MB | RSS at the end MB | growth "
        "| open fds (min–max after warm-up) | p99 first tenth ms | p99 last tenth ms | last ÷ first |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {minutes:g} | {(outage[1] - outage[0]) / 60:.1f} min | {sum(len(v) for v in order.values())} "
        f"| {'yes' if complete else 'NO'} | {warm:.1f} | {end:.1f} | **{growth:+.2f} %** | {min(fds)}–{max(fds)} "
        f"| {early:.2f} | {late:.2f} | **{late / early:.2f}** |",
    ]


def build_detector(work: Path) -> Path:
    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.examples import train_example
    from edgekit.formats import Precision, get_format

    shapes = Path(train_example("shapes-detector", work / "shapes", seed=0)["out"])
    request = ConvertRequest(
        source=shapes / "model.keras", target=get_format("tflite"), precision=Precision.INT8, out=work / "shapes.tflite"
    )
    return Path(convert(request)["artifact"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cut", type=float, default=60.0, help="seconds of the network cut")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs")
    parser.add_argument("--soak-minutes", type=float, default=60.0, help="minutes of the soak (0: leave it out)")
    parser.add_argument("--only", choices=("outbox", "cut", "kills", "soak"), help="one part, printed")
    parser.add_argument("--detector", type=Path, help="a shapes-detector int8 .tflite already built (else trained)")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    args = parser.parse_args()
    parts: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-endurance-") as tmp:
        work = Path(tmp)
        if args.only in (None, "outbox"):
            parts["outbox"] = outbox_cost(work)
        if args.only != "outbox":
            from edgekit.examples.shapes_video import write_shapes_video

            video = write_shapes_video(work / "shapes.avi", frames=300, width=640, height=480)
            detector = args.detector or build_detector(work)
            broker = Mosquitto(work / "broker").start()
            try:
                if args.only in (None, "cut"):
                    parts["cut"] = network_cut(detector, video, broker, work, args.cut)
                if args.only in (None, "kills"):
                    parts["kills"] = kills(detector, video, broker, work, args.kills)
                if args.only in (None, "soak") and args.soak_minutes > 0:
                    parts["soak"] = soak(detector, video, broker, work, args.soak_minutes)
            finally:
                broker.stop()
    titles = {
        "outbox": "The outbox's put, at 100 and at 100,000 waiting rows:",
        "cut": "A network cut at full speed (shapes-detector int8, looping 640×480 recording, 1 thread):",
        "kills": "SIGKILL at random moments, the same outbox throughout, then one clean run to deliver what waited:",
        "soak": "Soak at 30 frames/s with a broker outage in the middle (its own process):",
    }
    body: list[str] = []
    for name, rows in parts.items():
        body += [titles[name], "", *rows, ""]
    if args.only:
        print("\n".join(body))
        return
    command = (
        "python benchmarks/endurance.py"
        + (f" --cut {args.cut:g}" if args.cut != 60 else "")
        + (f" --kills {args.kills}" if args.kills != 20 else "")
        + (f" --soak-minutes {args.soak_minutes:g}" if args.soak_minutes != 60 else "")
    )
    publish("endurance", "The daemon over weeks (issue 17)", command, body[:-1], write=not args.no_write)


if __name__ == "__main__":
    main()
