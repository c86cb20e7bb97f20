"""A fleet over one broker (issue 18), measured in one run against Mosquittos of its own.

    python benchmarks/fleet.py [--devices 50] [--fps 2] [--cut 30] [--no-write]

``--devices`` real ``edgekit run`` processes, each on a looping recording at ``--fps`` frames/s
(the shapes detector int8), all trusting one deployment key:

1. One Mosquitto. ``edgekit fleet status --json`` (the command, as a user runs it) five times:
   its wall time, and whether every device was in its table. Then ``edgekit deploy`` of a
   second version of the detector (trained again with another seed, int8) to ``--all`` with
   ``--canary 1``: time to all active, bytes through the broker (its own ``$SYS`` counters,
   before and after), and from what a subscriber received: every device's ``seq`` unbroken
   across its swap, its model sha changing exactly once, every result after the swap naming
   the new sha.
2. A bad model with ``--max-failures 1``: a bundle whose recorded check outputs the model does
   not give on the device (as a runtime that computes it wrongly would). The canary must fail
   its on-device check and stay on its model; no other device may be offered it.
3. The same fleet behind a bridged pair: the devices on a site broker bridged to a central one
   (through a proxy the benchmark cuts), the deploying command and the subscriber on the
   central one. The bridge is cut for ``--cut`` seconds once the canary is active, while the
   rest are being offered the model: the rollout must complete and nothing be lost.
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
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402

from benchmarks.results_file import publish  # noqa: E402
from tools.fleet_bundles import with_wrong_check  # noqa: E402
from tools.mqtt_brokers import CuttableProxy, Mosquitto, free_port  # noqa: E402


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def edgekit(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


# -- models, keys -----------------------------------------------------------------------------


def build_models(work: Path, epochs: int | None) -> tuple[Path, Path]:
    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.examples import train_example
    from edgekit.formats import Precision, get_format

    made = []
    # Version 2 is the same detector trained again (another seed): as fast, different weights, so
    # the canary's settle check compares like with like.
    for seed, name in ((0, "shapes_int8.tflite"), (1, "shapes_v2_int8.tflite")):
        shapes = Path(train_example("shapes-detector", work / f"shapes-{seed}", seed=seed, epochs=epochs)["out"])
        request = ConvertRequest(
            source=shapes / "model.keras", target=get_format("tflite"), precision=Precision.INT8, out=work / name
        )
        made.append(Path(convert(request)["artifact"]))
    return made[0], made[1]


def sha_of(model: Path) -> str:
    from edgekit.manifest import load_manifest

    manifest = load_manifest(model)
    assert manifest is not None
    return manifest.sha256


# -- brokers ----------------------------------------------------------------------------------


def broker_config(port: int) -> str:
    # $SYS every second: the bytes it sent and received are the rollout's traffic.
    return f"listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\nmax_queued_messages 1000000\n"


def bridge_config(port: int, central_port: int) -> str:
    return broker_config(port) + (
        "connection central\n"
        f"address 127.0.0.1:{central_port}\n"
        "topic edgekit/# both 1\n"
        "cleansession false\n"
        "restart_timeout 1 2\n"
        "keepalive_interval 5\n"
    )


class Watcher:
    """One subscriber: every device's results (run_id, seq, model sha), offers, states, $SYS bytes."""

    def __init__(self, port: int) -> None:
        self.results: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
        self.offers: dict[str, list[str]] = defaultdict(list)
        self.states: dict[str, dict[str, Any]] = {}
        self.sys: dict[str, int] = {}
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-watcher-{port}",
                                  protocol=mqtt.MQTTv311, clean_session=False)  # fmt: skip
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [("edgekit/+/results", 1), ("edgekit/+/deploy", 1), ("edgekit/+/deploy/state", 1),
             ("$SYS/broker/bytes/#", 0)]
        )  # fmt: skip
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._message
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        parts = message.topic.split("/")
        with self._lock:
            if parts[0] == "$SYS":
                self.sys[parts[-1]] = int(message.payload)
                return
            try:
                document = json.loads(message.payload) if message.payload else None
            except json.JSONDecodeError:
                return
            if not isinstance(document, dict):
                return
            if parts[2] == "results":
                self.results[parts[1]].append((document["run_id"], document["seq"], document["model_sha256"]))
            elif len(parts) == 3 and parts[2] == "deploy":
                self.offers[parts[1]].append(str(document.get("deployment")))
            elif parts[2:] == ["deploy", "state"]:
                self.states[parts[1]] = document

    def bytes_through(self) -> int:
        with self._lock:
            return self.sys.get("sent", 0) + self.sys.get("received", 0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- the fleet --------------------------------------------------------------------------------


def start_fleet(count: int, model: Path, video: Path, port: int, public: Path, work: Path, fps: float) -> list[Any]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    daemons = []
    for index in range(count):
        name = f"cam-{index:02d}"
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        daemons.append(
            subprocess.Popen(
                [sys.executable, "-m", "edgekit", "run", "--model", str(model), "--source", str(video), "--loop",
                 "--max-fps", f"{fps:g}", "--broker", f"mqtt://127.0.0.1:{port}", "--device-id", name,
                 "--threads", "1", "--buffer", str(folder / "outbox.sqlite"), "--stats-interval", "5",
                 "--trust-key", str(public)],
                stdout=subprocess.DEVNULL, stderr=open(folder / "daemon.log", "w"), env=env,  # noqa: SIM115
            )
        )  # fmt: skip
        time.sleep(0.3)  # 50 Pythons importing at once on two cores would time each other out
    return daemons


def wait_online(watcher: Watcher, count: int, timeout: float = 600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if sum(1 for v in watcher.results.values() if len(v) >= 3) >= count:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError(f"only {sum(1 for v in watcher.results.values() if v)} of {count} devices produced results")


def stop_fleet(daemons: list[Any]) -> float:
    """Stop every daemon (SIGTERM); their resident memory together just before, in MB."""
    rss = 0.0
    for daemon in daemons:
        try:
            rss += psutil.Process(daemon.pid).memory_info().rss / 1e6
        except psutil.Error:
            pass
        daemon.terminate()
    for daemon in daemons:
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
    return rss


def swaps_clean(watcher: Watcher, old: str, new: str) -> tuple[int, int, list[str]]:
    """Devices whose seq is unbroken, devices that swapped exactly once old → new, and what was wrong."""
    unbroken = swapped = 0
    problems = []
    with watcher._lock:
        streams = {k: list(v) for k, v in watcher.results.items()}
    for device, rows in sorted(streams.items()):
        runs = {r for r, _, _ in rows}
        seqs = sorted({s for _, s, _ in rows})
        if len(runs) == 1 and seqs == list(range(seqs[0], seqs[0] + len(seqs))):
            unbroken += 1
        else:
            problems.append(f"{device}: {len(runs)} runs, {seqs[-1] - seqs[0] + 1 - len(seqs)} seq missing")
        ordered = [sha for _, _, sha in sorted(rows, key=lambda r: r[1])]
        changes = [i for i in range(1, len(ordered)) if ordered[i] != ordered[i - 1]]
        if ordered and ordered[0] == old and ordered[-1] == new and len(changes) == 1:
            swapped += 1
        else:
            problems.append(
                f"{device}: model shas {len(changes)} changes, ends on {ordered[-1][:8] if ordered else '—'}"
            )
    return unbroken, swapped, problems


def status_times(port: int, count: int, rounds: int = 5) -> tuple[float, int]:
    """Median wall seconds of `edgekit fleet status --json`, and the fewest devices one run showed."""
    times, seen = [], []
    for _ in range(rounds):
        started = time.monotonic()
        done = edgekit("fleet", "status", "--broker", f"mqtt://127.0.0.1:{port}", "--json", timeout=60)
        times.append(time.monotonic() - started)
        rows = json.loads(done.stdout)["devices"] if done.returncode == 0 else []
        seen.append(sum(1 for r in rows if r["online"]))
    return statistics.median(times), min(seen)


def deploy(model: Path, port: int, key: Path, *extra: str) -> dict[str, Any]:
    done = edgekit(
        "deploy", str(model), "--broker", f"mqtt://127.0.0.1:{port}", "--all", "--canary", "1", "--key", str(key),
        "--json", *extra,
    )  # fmt: skip
    if not done.stdout.strip():
        raise RuntimeError(f"edgekit deploy printed nothing: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    report["exit"] = done.returncode
    return report


def bad_rollout(model: Path, port: int, private: Path, devices: list[str], work: Path) -> dict[str, Any]:
    from edgekit.daemon.bundle import build_bundle
    from edgekit.daemon.signing import Signer
    from edgekit.fleet.deploy import rollout
    from edgekit.fleet.deployer import open_deployer

    deployer = open_deployer(f"mqtt://127.0.0.1:{port}")
    try:
        return rollout(
            deployer, with_wrong_check(build_bundle(model, work / "bad"), work / "bad"), devices, Signer(private),
            canary=1, max_failures=1, settle_s=0, max_slowdown=0.2, timeout_s=120, progress=log,
        )  # fmt: skip
    finally:
        deployer.close()


# -- the parts --------------------------------------------------------------------------------


def one_broker(args: Any, old: Path, new: Path, video: Path, keys: tuple[Path, Path], work: Path) -> list[str]:
    port = free_port()
    broker = Mosquitto(work / "broker", extra=broker_config(port), port=port).start()
    watcher = Watcher(port)
    daemons = start_fleet(args.devices, old, video, port, keys[1], work / "one", args.fps)
    try:
        up = wait_online(watcher, args.devices)
        log(f"{args.devices} devices producing after {up:.0f} s")
        status_s, status_seen = status_times(port, args.devices)
        log(f"fleet status: {status_s:.2f} s (median of 5), fewest devices shown {status_seen}")
        time.sleep(2)
        before = watcher.bytes_through()
        report = deploy(new, port, keys[0], "--settle", "5")
        time.sleep(3)
        through = watcher.bytes_through() - before
        log(f"rollout: {report['seconds']} s, complete {report['complete']}, {through / 1e6:.1f} MB through the broker")
        if report["aborted"]:
            log(f"  stopped: {report['aborted']}")
        time.sleep(5)  # results after the swap
        unbroken, swapped, problems = swaps_clean(watcher, sha_of(old), sha_of(new))
        for line in problems[:5]:
            log(f"  {line}")
        devices = sorted(watcher.results)
        bad = bad_rollout(old, port, keys[0], devices, work)
        time.sleep(2)
        bad_id = bad["deployment"]
        others = sum(1 for d in devices[1:] if bad_id in watcher.offers.get(d, []))
        canary_state = bad["devices"][0]["state"]
        still_new = watcher.results[devices[0]][-1][2] == sha_of(new)
        log(f"bad model: canary {canary_state!r}, offered to {others} others, canary still on its model {still_new}")
        rss = stop_fleet(daemons)
    finally:
        stop_fleet(daemons)
        watcher.close()
        broker.stop()
    return [
        f"{args.devices} daemons at {args.fps:g} frames/s each on one Mosquitto "
        f"(together {rss / 1e3:.1f} GB resident):",
        "",
        "| fleet status (median of 5, the command's wall time) | devices shown (fewest) | rollout to all, 1 canary "
        "(settle 5 s) | complete | MB through the broker | bundle MB | seq unbroken | swapped once, then only the new "
        "sha |",
        "|---|---|---|---|---|---|---|---|",
        f"| **{status_s:.2f} s** | {status_seen} of {args.devices} | **{report['seconds']:.1f} s** | "
        f"{'yes' if report['complete'] else 'NO'} | {through / 1e6:.1f} | {report['bundle_bytes'] / 1e6:.2f} | "
        f"**{unbroken} of {len(watcher.results)}** | **{swapped} of {len(watcher.results)}** |",
        "",
        "A bad model (the first version, its check outputs not what it gives) with `--max-failures 1`, canary 1:",
        "",
        "| canary's state | canary still on its model | other devices offered it | rollout stopped |",
        "|---|---|---|---|",
        f"| {canary_state} | {'yes' if still_new else 'NO'} | **{others}** | {bad['aborted'] or 'NO'} |",
    ]


def bridged(args: Any, old: Path, new: Path, video: Path, keys: tuple[Path, Path], work: Path) -> list[str]:
    central_port, site_port = free_port(), free_port()
    central = Mosquitto(work / "central", extra=broker_config(central_port), port=central_port).start()
    proxy = CuttableProxy(central_port)
    proxy.restore()
    site = Mosquitto(work / "site", extra=bridge_config(site_port, proxy.port), port=site_port).start()
    watcher = Watcher(central_port)
    daemons = start_fleet(args.devices, old, video, site_port, keys[1], work / "bridged", args.fps)
    cut_at: list[float] = []
    try:
        up = wait_online(watcher, args.devices)
        log(f"bridged: {args.devices} devices seen on the central broker after {up:.0f} s")
        time.sleep(5)  # every retained info and stats across the bridge

        def cut_when_canary_active() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                state = watcher.states.get("cam-00") or {}
                if state.get("state") == "active" and state.get("sha256") == sha_of(new):
                    proxy.cut()
                    cut_at.append(time.monotonic())
                    log(f"bridge cut for {args.cut:g} s")
                    time.sleep(args.cut)
                    proxy.restore()
                    return
                time.sleep(0.1)

        cutter = threading.Thread(target=cut_when_canary_active, daemon=True)
        cutter.start()
        report = deploy(new, central_port, keys[0], "--settle", "2", "--timeout", "600")
        cutter.join(args.cut + 60)
        time.sleep(10)  # what the site broker held for the bridge arrives
        unbroken, swapped, problems = swaps_clean(watcher, sha_of(old), sha_of(new))
        for line in problems[:5]:
            log(f"  {line}")
        log(f"bridged rollout: {report['seconds']} s, complete {report['complete']}, cut {'yes' if cut_at else 'NO'}")
        if report["aborted"]:
            log(f"  stopped: {report['aborted']}")
        stop_fleet(daemons)
    finally:
        stop_fleet(daemons)
        watcher.close()
        site.stop()
        proxy.close()
        central.stop()
    return [
        f"The same {args.devices} daemons on a site Mosquitto bridged to a central one; `edgekit deploy` and the "
        f"subscriber on the central one; the bridge cut for {args.cut:g} s once the canary was active:",
        "",
        "| bridge cut during the rollout | rollout to all, 1 canary | complete | seq unbroken (seen centrally) "
        "| swapped once, then only the new sha |",
        "|---|---|---|---|---|",
        f"| {'yes' if cut_at else 'NO'}, {args.cut:g} s | **{report['seconds']:.1f} s** | "
        f"{'yes' if report['complete'] else 'NO'} | **{unbroken} of {len(watcher.results)}** | "
        f"**{swapped} of {len(watcher.results)}** |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=50, help="daemons in the fleet")
    parser.add_argument("--fps", type=float, default=2.0, help="frames/s each daemon reads")
    parser.add_argument("--cut", type=float, default=30.0, help="seconds the bridge is cut")
    parser.add_argument("--only", choices=("one", "bridged"), help="one part, printed")
    parser.add_argument("--epochs", type=int, help="train the detector this briefly (a trial run)")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    args = parser.parse_args()
    from edgekit.daemon.signing import generate_key_pair
    from edgekit.examples.shapes_video import write_shapes_video

    body: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-fleet-") as tmp:
        work = Path(tmp)
        video = write_shapes_video(work / "shapes.avi", frames=90, width=320, height=240)
        old, new = build_models(work, args.epochs)
        keys = generate_key_pair(work / "deploy.key")
        if args.only in (None, "one"):
            body += one_broker(args, old, new, video, keys, work) + [""]
        if args.only in (None, "bridged"):
            body += bridged(args, old, new, video, keys, work) + [""]
    if args.only:
        print("\n".join(body))
        return
    command = (
        "python benchmarks/fleet.py"
        + (f" --devices {args.devices}" if args.devices != 50 else "")
        + (f" --fps {args.fps:g}" if args.fps != 2 else "")
        + (f" --cut {args.cut:g}" if args.cut != 30 else "")
        + (f" --epochs {args.epochs}" if args.epochs else "")
    )
    publish("fleet", "A fleet over one broker (issue 18)", command, body[:-1], write=not args.no_write)


if __name__ == "__main__":
    main()
