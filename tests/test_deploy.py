"""`edgekit deploy` and `edgekit rollback` against real daemons on a real Mosquitto: the swap between
two frames, signatures, corrupt chunks, a model that fails its on-device check, races, canaries."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edgekit.daemon.bundle import Bundle, build_bundle, chunk_hashes, read_chunk
from edgekit.daemon.signing import Signer, TrustedKeys, generate_key_pair
from edgekit.errors import ConfigError, DeploymentError
from edgekit.fleet.deploy import parse_max_failures, rollout
from edgekit.fleet.deployer import CHUNK_BYTES, Deployer, open_deployer
from tools.fleet_bundles import with_wrong_check
from tools.mqtt_brokers import CuttableProxy, Mosquitto, Recorder

from .conftest import run_edgekit
from .test_daemon import daemon_log, no_gaps, start_daemon, terminate

CONFIG_EXIT = ConfigError.exit_code


@pytest.fixture
def broker(tmp_path):
    mosquitto = Mosquitto(tmp_path / "broker").start()
    yield mosquitto
    mosquitto.stop()


def _shapes_as(trained: dict[str, Path], folder: Path, name: str, format_name: str) -> Path:
    from edgekit.converters.pipeline import ConvertRequest, convert
    from edgekit.formats import Precision, get_format

    source = trained["shapes-detector"] / "model.keras"
    request = ConvertRequest(source=source, target=get_format(format_name), precision=Precision.FP32, out=folder / name)
    return Path(convert(request)["artifact"])


@pytest.fixture(scope="module")
def second_model(trained, tmp_path_factory) -> Path:
    """The shapes detector again, fp32: a different artifact for the same camera."""
    return _shapes_as(trained, tmp_path_factory.mktemp("deploy-model"), "shapes_fp32.tflite", "tflite")


@pytest.fixture(scope="module")
def onnx_model(trained, tmp_path_factory) -> Path:
    """The shapes detector as ONNX: an artifact a device without ONNX Runtime cannot run."""
    return _shapes_as(trained, tmp_path_factory.mktemp("deploy-onnx"), "shapes.onnx", "onnx")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "deploy.key")


def sha_of(model: Path) -> str:
    from edgekit.manifest import load_manifest

    manifest = load_manifest(model)
    assert manifest is not None
    return manifest.sha256


def running_daemon(
    tmp_path: Path, broker: Mosquitto, model: Path, video: Path, device_id: str, public: Path, port: int | None = None
) -> Any:
    folder = tmp_path / device_id
    folder.mkdir()
    daemon = start_daemon(
        folder, model, video, f"mqtt://127.0.0.1:{port or broker.port}", device_id, "--loop", "--max-fps", "20",
        "--stats-interval", "0.5", "--trust-key", str(public),
    )  # fmt: skip
    return daemon, folder


def wait_results(recorder: Recorder, count: int, timeout: float = 90.0) -> None:
    assert recorder.wait_for(lambda r: len(r.results()) >= count, timeout), "no results from the daemon"


def states(recorder: Recorder) -> list[str]:
    return [p["state"] for p in recorder.of("state") if isinstance(p, dict)]


def deploy_cli(broker: Mosquitto, *args: str) -> Any:
    return run_edgekit("deploy", *args, "--broker", f"mqtt://127.0.0.1:{broker.port}", "--json", timeout=240)


def test_deploy_swaps_between_two_frames_and_rollback_returns(tmp_path, broker, detector, second_model, video, keys):
    private, public = keys
    daemon, folder = running_daemon(tmp_path, broker, detector, video, "cam-d", public)
    recorder = Recorder(broker.port, "cam-d")
    try:
        wait_results(recorder, 20)
        result = deploy_cli(broker, str(second_model), "--devices", "cam-d", "--key", str(private), "--settle", "0")
        assert result.returncode == 0, result.stderr + daemon_log(folder)
        report = json.loads(result.stdout)
        assert report["complete"] and report["devices"] == [{"device_id": "cam-d", "state": "active"}]
        new_sha, old_sha = sha_of(second_model), sha_of(detector)
        assert recorder.wait_for(lambda r: sum(x["model_sha256"] == new_sha for x in r.results()) >= 10, 60)

        back = run_edgekit(
            "rollback", "--devices", "cam-d", "--key", str(private), "--broker", f"mqtt://127.0.0.1:{broker.port}",
            "--json", timeout=120,
        )  # fmt: skip
        assert back.returncode == 0, back.stderr + daemon_log(folder)
        assert json.loads(back.stdout)["devices"] == [{"device_id": "cam-d", "state": "rolled back"}]
        count = len(recorder.results())
        assert recorder.wait_for(lambda r: len(r.results()) >= count + 10, 60)
    finally:
        terminate(daemon)
        recorder.client.loop_stop()
    results = recorder.results()
    assert len({r["run_id"] for r in results}) == 1 and no_gaps([r["seq"] for r in results]), "seq unbroken"
    shas = [r["model_sha256"] for r in results]
    # old model, then only the new one, then only the old one again: each swap between two frames
    changes = [i for i in range(1, len(shas)) if shas[i] != shas[i - 1]]
    assert len(changes) == 2 and shas[0] == old_sha and shas[changes[0]] == new_sha and shas[-1] == old_sha
    assert [r["model"] for r in results][changes[0]] == second_model.name
    assert "downloading" in states(recorder) and "verifying" in states(recorder)
    info = recorder.of("info")[-1]
    assert info["model"]["sha256"] == old_sha and info["deploy"]["accepts"]


def _connected_deployer(port: int, cls: type[Deployer] = Deployer) -> tuple[Any, Deployer]:
    deployer = open_deployer(f"mqtt://127.0.0.1:{port}", deployer_class=cls)
    assert deployer.view.wait_settled(10)
    return deployer.client, deployer


class CorruptingDeployer(Deployer):
    """Uploads chunk 0 damaged: the device must refuse it and ask again."""

    def upload(self, bundle: Bundle) -> list[str]:
        hashes = super().upload(bundle)
        self.client.publish(f"edgekit/artifacts/{bundle.sha256}/0", b"\0" * 100, qos=1, retain=True).wait_for_publish(5)
        return hashes


def test_refusals_corrupt_chunks_failed_checks_and_races(tmp_path, broker, detector, second_model, video, keys):
    private, public = keys
    other_private, _ = generate_key_pair(tmp_path / "other.key")
    daemon, folder = running_daemon(tmp_path, broker, detector, video, "cam-r", public)
    recorder = Recorder(broker.port, "cam-r")
    old_sha, new_sha = sha_of(detector), sha_of(second_model)
    quiet = {"canary": 0, "max_failures": 0, "settle_s": 0, "max_slowdown": 0.2, "timeout_s": 90, "progress": print}
    try:
        wait_results(recorder, 10)
        # Unsigned: refused before anything is fetched.
        raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        raw.connect("127.0.0.1", broker.port)
        raw.loop_start()
        offer = {"kind": "deploy", "deployment": "unsigned1", "device": "cam-r", "bundle": {"sha256": "0" * 64}}
        raw.publish("edgekit/cam-r/deploy", json.dumps(offer), qos=1, retain=True).wait_for_publish(5)
        assert recorder.wait_for(lambda r: any("not signed" in s for s in states(r)), 30)
        # Signed by a key the device does not trust: one line, exit 18, nothing changes.
        result = deploy_cli(broker, str(second_model), "--devices", "cam-r", "--key", str(other_private))
        assert result.returncode == DeploymentError.exit_code, result.stderr
        last = result.stderr.strip().splitlines()[-1]  # after the progress lines: one line saying why
        assert last.startswith("edgekit: error: ") and "does not trust" in last, result.stderr
        # The device is told the same thing over MQTT: a tampered offer is refused too.
        client, deployer = _connected_deployer(broker.port)
        signer = Signer(private)
        bundle = build_bundle(second_model, tmp_path / "bundle")
        tampered = {"kind": "deploy", "deployment": "tampered1", "device": "cam-r", "key_id": signer.key_id}
        tampered["signature"] = signer.sign(b"something else")
        raw.publish("edgekit/cam-r/deploy", json.dumps(tampered), qos=1, retain=True).wait_for_publish(5)
        assert recorder.wait_for(lambda r: any("signature does not match" in s for s in states(r)), 30)

        # A model that loads but fails its on-device check: failed, the old model keeps running.
        bad = rollout(deployer, with_wrong_check(bundle, tmp_path), ["cam-r"], signer, **quiet)
        assert not bad["complete"] and bad["devices"][0]["state"].startswith("failed: on-device check: output 0")
        count = len(recorder.results())
        assert recorder.wait_for(lambda r: len(r.results()) >= count + 10, 30)
        assert {r["model_sha256"] for r in recorder.results()} == {old_sha}

        # A corrupt chunk: refused, asked for again, and the deployment completes.
        client.loop_stop()
        client.disconnect()
        client, deployer = _connected_deployer(broker.port, CorruptingDeployer)
        good = rollout(deployer, bundle, ["cam-r"], signer, **quiet)
        assert good["complete"], good
        assert "corrupt; asking for it again" in daemon_log(tmp_path / "cam-r")
        assert recorder.wait_for(lambda r: r.results()[-1]["model_sha256"] == new_sha, 30)

        # Two deployments racing: the later wins, the earlier is reported superseded.
        first = {"kind": "rollback", "deployment": "race-early"}
        never = {"sha256": "f" * 64, "size": 10, "chunk_bytes": CHUNK_BYTES, "chunk_sha256": ["0" * 64]}
        early = {"kind": "deploy", "deployment": "race-early", "artifact": {"name": "x.tflite", "sha256": "x"}}
        deployer.offer("cam-r", dict(early, bundle=never), signer)
        deployer.offer("cam-r", dict(first, deployment="race-late"), signer)
        assert recorder.wait_for(lambda r: any(p.get("superseded") == "race-early" for p in r.of("state")), 30)
        assert recorder.wait_for(lambda r: r.of("state")[-1].get("state") == "rolled back", 60)
        assert recorder.wait_for(lambda r: r.results()[-1]["model_sha256"] == old_sha, 30)

        # A replay: a genuinely signed rollback, issued before the last offer the device accepted.
        from edgekit.daemon.bundle import canonical

        replay = {"kind": "rollback", "deployment": "replayed1", "device": "cam-r", "key_id": signer.key_id,
                  "issued": time.time() - 3600}  # fmt: skip
        replay["signature"] = signer.sign(canonical(replay))
        raw.publish("edgekit/cam-r/deploy", json.dumps(replay), qos=1, retain=True).wait_for_publish(5)
        assert recorder.wait_for(lambda r: any("issued before the last offer" in s for s in states(r)), 30)
        count = len(recorder.results())
        assert recorder.wait_for(lambda r: len(r.results()) >= count + 5, 30)
        assert {r["model_sha256"] for r in recorder.results()[count:]} == {old_sha}, "the replay changed nothing"
        client.loop_stop()
        client.disconnect()
        raw.loop_stop()
        raw.disconnect()
    finally:
        terminate(daemon)
        recorder.client.loop_stop()
    results = recorder.results()
    assert len({r["run_id"] for r in results}) == 1 and no_gaps([r["seq"] for r in results])


def test_a_canary_that_fails_its_check_stops_the_rollout(tmp_path, broker, detector, second_model, video, keys):
    private, public = keys
    first, first_folder = running_daemon(tmp_path, broker, detector, video, "cam-1", public)
    second, _ = running_daemon(tmp_path, broker, detector, video, "cam-2", public)
    recorders = [Recorder(broker.port, "cam-1"), Recorder(broker.port, "cam-2")]
    try:
        for recorder in recorders:
            wait_results(recorder, 5)
        client, deployer = _connected_deployer(broker.port)
        bundle = with_wrong_check(build_bundle(second_model, tmp_path / "bundle"), tmp_path)
        result = rollout(
            deployer, bundle, ["cam-1", "cam-2"], Signer(private), canary=1, max_failures=1, settle_s=0,
            max_slowdown=0.2, timeout_s=90, progress=print,
        )  # fmt: skip
        client.loop_stop()
        client.disconnect()
        assert not result["complete"] and "canary cam-1" in (result["aborted"] or "")
        assert result["devices"][0]["state"].startswith("failed: on-device check")
        assert result["devices"][1]["state"] == "waiting"
        time.sleep(1.0)
        assert recorders[1].of("deploy") == [], "the second device was never offered the model"
    finally:
        terminate(first)
        terminate(second)
        for recorder in recorders:
            recorder.client.loop_stop()
    assert "on-device check" in daemon_log(first_folder)


class HalfUploader(Deployer):
    """Small chunks, and only the first half of them on the broker until ``upload_rest``."""

    def upload(self, bundle: Bundle) -> list[str]:
        self.bundle = bundle
        self.chunk_bytes = max(4096, bundle.size // 10)
        hashes = chunk_hashes(bundle.path, self.chunk_bytes)
        self.half = len(hashes) // 2
        for index in range(self.half):
            self._put(bundle, index)
        return hashes

    def _put(self, bundle: Bundle, index: int) -> None:
        data = read_chunk(bundle.path, index, self.chunk_bytes)
        self.client.publish(f"edgekit/artifacts/{bundle.sha256}/{index}", data, qos=1, retain=True).wait_for_publish(5)

    def upload_rest(self) -> None:
        assert self.bundle is not None
        for index in range(self.half, len(chunk_hashes(self.bundle.path, self.chunk_bytes))):
            self._put(self.bundle, index)


def test_a_transfer_cut_off_resumes_from_the_broker_and_verifies(tmp_path, broker, detector, second_model, video, keys):
    """The device's link to the broker is cut halfway through the chunks: it keeps what it has,
    fetches the rest once it is back, verifies the whole and swaps, losing no result."""
    private, public = keys
    proxy = CuttableProxy(broker.port)
    proxy.restore()
    daemon, folder = running_daemon(tmp_path, broker, detector, video, "cam-c", public, port=proxy.port)
    recorder = Recorder(broker.port, "cam-c")
    outcome: dict[str, Any] = {}
    try:
        wait_results(recorder, 10)
        client, deployer = _connected_deployer(broker.port, HalfUploader)
        bundle = build_bundle(second_model, tmp_path / "bundle")
        worker = threading.Thread(
            target=lambda: outcome.update(
                rollout(deployer, bundle, ["cam-c"], Signer(private), canary=0, max_failures=0, settle_s=0,
                        max_slowdown=0.2, timeout_s=120, progress=print)
            )
        )  # fmt: skip
        worker.start()
        parts = folder / "deployments-cam-c" / f"{bundle.sha256}.parts"
        deadline = time.monotonic() + 60
        while len(list(parts.glob("*.chunk"))) < getattr(deployer, "half", 1 << 30):
            assert time.monotonic() < deadline, "the device did not fetch the first half"
            time.sleep(0.1)
        proxy.cut()
        deployer.upload_rest()  # the rest reaches the broker while the device is away
        time.sleep(3)
        assert "active" not in states(recorder)
        proxy.restore()
        worker.join(150)
        client.loop_stop()
        client.disconnect()
        assert outcome.get("complete"), outcome
        new_sha = sha_of(second_model)
        assert recorder.wait_for(lambda r: sum(x["model_sha256"] == new_sha for x in r.results()) >= 10, 60)
    finally:
        terminate(daemon)
        recorder.client.loop_stop()
        proxy.close()
    results = recorder.results()
    assert len({r["run_id"] for r in results}) == 1 and no_gaps([r["seq"] for r in results]), "nothing lost"
    assert not parts.exists(), "the chunks are cleared once assembled"


def test_an_artifact_the_device_cannot_run_is_refused_before_it_is_fetched(
    tmp_path, broker, detector, onnx_model, video, keys
):
    """A device without ONNX Runtime (its import blocked) is offered an .onnx: refused at once, and
    the old model keeps running."""
    private, public = keys
    blocker = tmp_path / "no-onnxruntime"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None  # as if not installed\n")
    import os

    folder = tmp_path / "cam-n"
    folder.mkdir()
    path = os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH", "")) if p)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "run", "--buffer", str(folder / "outbox.sqlite"), "--model", str(detector),
         "--source", str(video), "--broker", f"mqtt://127.0.0.1:{broker.port}", "--device-id", "cam-n", "--loop",
         "--max-fps", "20", "--stats-interval", "0.5", "--trust-key", str(public)],
        stdout=subprocess.PIPE, stderr=open(folder / "daemon.log", "w"), text=True,  # noqa: SIM115
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path},
    )  # fmt: skip
    recorder = Recorder(broker.port, "cam-n")
    try:
        wait_results(recorder, 10)
        assert "onnxruntime" not in recorder.of("info")[-1]["engines"]
        result = deploy_cli(broker, str(onnx_model), "--devices", "cam-n", "--key", str(private), "--settle", "0")
        assert result.returncode == DeploymentError.exit_code, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert "cannot run shapes.onnx" in last and "onnxruntime" in last, last
        count = len(recorder.results())
        assert recorder.wait_for(lambda r: len(r.results()) >= count + 10, 30)
        assert {r["model_sha256"] for r in recorder.results()} == {sha_of(detector)}
        assert not any(p.name.endswith(".parts") for p in (folder / "deployments-cam-n").iterdir()), "nothing fetched"
    finally:
        terminate(daemon)
        recorder.client.loop_stop()


def test_a_deployer_killed_mid_rollout_shows_interrupted_and_the_same_deploy_resumes(
    tmp_path, broker, detector, second_model, video, keys
):
    private, public = keys
    url = f"mqtt://127.0.0.1:{broker.port}"
    daemons = [running_daemon(tmp_path, broker, detector, video, name, public) for name in ("cam-k1", "cam-k2")]
    recorders = [Recorder(broker.port, "cam-k1"), Recorder(broker.port, "cam-k2")]
    try:
        for recorder in recorders:
            wait_results(recorder, 5)
        args = [str(second_model), "--devices", "cam-k1,cam-k2", "--key", str(private), "--canary", "1"]
        deploying = subprocess.Popen(
            [sys.executable, "-m", "edgekit", "deploy", *args, "--settle", "300", "--broker", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert recorders[0].wait_for(lambda r: "active" in states(r), 120), "the canary never went active"
        deploying.kill()  # the deploying machine goes away while watching the canary
        deploying.wait(10)

        status = run_edgekit("fleet", "status", "--broker", url, "--json", timeout=60)
        assert status.returncode == 0, status.stderr
        rollouts = json.loads(status.stdout)["rollouts"]
        assert [r["state"] for r in rollouts] == ["interrupted"], rollouts
        assert rollouts[0]["devices"] == [
            {"device_id": "cam-k1", "state": "active"},
            {"device_id": "cam-k2", "state": "not offered"},
        ]
        table = run_edgekit("fleet", "status", "--broker", url, timeout=60).stdout
        assert "was interrupted: 1 of 2 devices active, 1 not offered" in table, table
        assert recorders[1].of("deploy") == [], "the device after the canary was never offered it"

        again = deploy_cli(broker, *args, "--settle", "0")
        assert again.returncode == 0, again.stderr
        assert "resuming rollout" in again.stderr
        assert [d["state"] for d in json.loads(again.stdout)["devices"]] == ["active", "active"]
        status = run_edgekit("fleet", "status", "--broker", url, "--json", timeout=60)
        assert json.loads(status.stdout)["rollouts"] == []
        assert {row["deploy"] for row in json.loads(status.stdout)["devices"]} == {"active"}
    finally:
        for daemon, _ in daemons:
            terminate(daemon)
        for recorder in recorders:
            recorder.client.loop_stop()
    new_sha = sha_of(second_model)
    for recorder in recorders:
        results = recorder.results()
        assert no_gaps([r["seq"] for r in results]) and results[-1]["model_sha256"] == new_sha


def test_the_shipped_mosquitto_acl_lets_only_the_deployer_offer(tmp_path, detector, second_model, video, keys):
    """examples/mosquitto-acl.conf as shipped: a device's own login cannot offer another device a
    deployment (even one signed by a trusted key: the broker drops it), the deployer's can."""
    import os

    from tools.mqtt_brokers import free_port

    private, public = keys
    users = {"deployer": "d-secret", "viewer": "v-secret", "cam-a": "a-secret", "cam-b": "b-secret"}
    passwords = tmp_path / "passwd"
    for index, (user, password) in enumerate(users.items()):
        flags = ["-b", "-c"] if index == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(passwords), user, password], check=True)
    acl = Path(__file__).resolve().parent.parent / "examples" / "mosquitto-acl.conf"
    port = free_port()
    extra = f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\nacl_file {acl}\n"
    broker = Mosquitto(tmp_path / "broker", extra=extra, port=port).start()
    url = f"mqtt://127.0.0.1:{port}"
    folder = tmp_path / "cam-a"
    folder.mkdir()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "run", "--buffer", str(folder / "outbox.sqlite"), "--model", str(detector),
         "--source", str(video), "--broker", url, "--device-id", "cam-a", "--username", "cam-a", "--loop",
         "--max-fps", "20", "--stats-interval", "0.5", "--trust-key", str(public)],
        stdout=subprocess.PIPE, stderr=open(folder / "daemon.log", "w"), text=True,  # noqa: SIM115
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EDGEKIT_MQTT_PASSWORD": users["cam-a"]},
    )  # fmt: skip

    def fleet(user: str, *args: str) -> Any:
        return run_edgekit(
            *args, "--broker", url, "--username", user, "--json", timeout=240,
            env_extra={"EDGEKIT_MQTT_PASSWORD": users[user]},
        )  # fmt: skip

    try:
        deadline = time.monotonic() + 90
        while True:
            rows = json.loads(fleet("viewer", "fleet", "status").stdout)["devices"]
            if rows and rows[0]["online"] and rows[0]["model"]:
                break
            assert time.monotonic() < deadline, daemon_log(folder)
            time.sleep(1)
        # cam-b's login, a signed offer: the broker does not let cam-b write cam-a's deploy topic.
        impostor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        impostor.username_pw_set("cam-b", users["cam-b"])
        impostor.connect("127.0.0.1", port)
        impostor.loop_start()
        offer = {"kind": "rollback", "deployment": "from-cam-b", "device": "cam-a", "key_id": Signer(private).key_id}
        from edgekit.daemon.bundle import canonical

        offer["signature"] = Signer(private).sign(canonical(offer))
        impostor.publish("edgekit/cam-a/deploy", json.dumps(offer), qos=1).wait_for_publish(5)
        time.sleep(3)
        impostor.loop_stop()
        impostor.disconnect()
        rows = json.loads(fleet("viewer", "fleet", "status").stdout)["devices"]
        assert rows[0]["deployment"] is None, "the device never saw cam-b's offer"
        # The deployer's: through, checked, active. The viewer may not deploy at all.
        denied = fleet("viewer", "deploy", str(second_model), "--devices", "cam-a", "--key", str(private),
                       "--timeout", "10")  # fmt: skip
        assert denied.returncode == DeploymentError.exit_code, denied.stderr
        assert "refused the model's chunks (Not authorized)" in denied.stderr.strip().splitlines()[-1], denied.stderr
        done = fleet("deployer", "deploy", str(second_model), "--devices", "cam-a", "--key", str(private))
        assert done.returncode == 0, done.stderr + daemon_log(folder)
        rows = json.loads(fleet("viewer", "fleet", "status").stdout)["devices"]
        assert rows[0]["deploy"] == "active" and rows[0]["sha256"] == sha_of(second_model)
    finally:
        terminate(daemon)
        broker.stop()


def test_fleet_bench_times_on_the_device_predicts_and_records_for_refit(
    tmp_path, broker, detector, second_model, video, keys
):
    """A device recognised as a Raspberry Pi 4 (EDGEKIT_MACHINE_NAME, as in a container) times a
    model between frames and while paused, beside its profile's prediction; the runs recorded are
    what `profiles refit` reads; its own model runs on, never replaced."""
    import os

    private, public = keys
    folder = tmp_path / "cam-b"
    folder.mkdir()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "run", "--buffer", str(folder / "outbox.sqlite"), "--model", str(detector),
         "--source", str(video), "--broker", f"mqtt://127.0.0.1:{broker.port}", "--device-id", "cam-b", "--loop",
         "--max-fps", "20", "--stats-interval", "0.5", "--trust-key", str(public)],
        stdout=subprocess.PIPE, stderr=open(folder / "daemon.log", "w"), text=True,  # noqa: SIM115
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EDGEKIT_MACHINE_NAME": "Raspberry Pi 4 Model B Rev 1.5"},
    )  # fmt: skip
    recorder = Recorder(broker.port, "cam-b")
    runs = tmp_path / "fleet.jsonl"
    home = {"HOME": str(tmp_path / "home")}
    try:
        wait_results(recorder, 10)
        assert recorder.of("info")[-1]["profile"] == "rpi4"
        reports = []
        for mode in ("--between-frames", "--paused"):
            done = run_edgekit(
                "fleet", "bench", str(second_model), "--devices", "cam-b", "--key", str(private), "--runs", "30",
                mode, "--record", str(runs), "--broker", f"mqtt://127.0.0.1:{broker.port}", "--json", timeout=240,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr + daemon_log(folder)
            reports.append(json.loads(done.stdout)["devices"][0])
        for report, mode in zip(reports, ("between frames", "paused"), strict=True):
            bench = report["bench"]
            assert report["state"] == "benched" and bench["mode"] == mode and bench["measured"]["runs"] == 30
            assert bench["profile"] == "rpi4" and bench["predicted"]["device"] == "rpi4"
            assert isinstance(bench["error_pct"], float)
        lines = [json.loads(line) for line in runs.read_text().splitlines()]
        assert len(lines) == 2 and {line["device"] for line in lines} == {"rpi4"}
        assert lines[0]["model"] == second_model.name and lines[0]["source"].startswith("edgekit fleet bench on")
        refit = run_edgekit(
            "profiles", "refit", "rpi4", "--measurements", str(runs), "--name", "rpi4-classroom", env_extra=home
        )
        assert refit.returncode == 0, refit.stderr
        count = len(recorder.results())
        assert recorder.wait_for(lambda r: len(r.results()) >= count + 10, 30)
    finally:
        terminate(daemon)
        recorder.client.loop_stop()
    results = recorder.results()
    assert {r["model_sha256"] for r in results} == {sha_of(detector)}, "benching never replaces the model"
    assert len({r["run_id"] for r in results}) == 1 and no_gaps([r["seq"] for r in results])
    leftovers = [p for p in (folder / "deployments-cam-b").iterdir() if p.is_dir()]
    assert leftovers == [], "the benched model's files are removed"


def test_signing_and_limits_alone(tmp_path) -> None:
    private, public = generate_key_pair(tmp_path / "k.key")
    signer, trusted = Signer(private), TrustedKeys([public])
    assert trusted.refusal(b"m", signer.key_id, signer.sign(b"m")) is None
    assert "does not match" in (trusted.refusal(b"n", signer.key_id, signer.sign(b"m")) or "")
    assert "trusts no deployment key" in (TrustedKeys([]).refusal(b"m", signer.key_id, signer.sign(b"m")) or "")
    assert parse_max_failures("10%", 50) == 5 and parse_max_failures("2", 50) == 2
    with pytest.raises(ConfigError):
        parse_max_failures("many", 5)
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(ConfigError):
        Signer(tmp_path / "junk.key")


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (["{model}", "--key", "{missing}"], 5, "edgekit: error: deployment key"),
        (["{model}", "--key", "{key}", "--canary", "-1"], ConfigError.exit_code, "edgekit: error: --canary"),
        (["{model}", "--key", "{key}"], ConfigError.exit_code, "edgekit: error: name the devices"),
        (["{model}", "--key", "{key}", "--devices", "nobody"], ConfigError.exit_code, "edgekit: error: no device"),
        # scikit-learn's iris classifier as the onnxruntime wheel ships it: not a camera model
        (["{iris}", "--key", "{key}", "--all"], ConfigError.exit_code, "edgekit: error: logreg_iris.onnx's input"),
    ],
)
def test_deploy_bad_input_is_one_line(tmp_path, broker, detector, keys, args, code, start) -> None:
    import onnxruntime

    iris = Path(onnxruntime.__file__).parent / "datasets" / "logreg_iris.onnx"
    values = {"model": str(detector), "key": str(keys[0]), "missing": str(tmp_path / "none.key"), "iris": str(iris)}
    result = deploy_cli(broker, *[a.format(**values) for a in args])
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), lines


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (
            ["{model}", "--key", "{key}", "--devices", "x", "--runs", "0"],
            ConfigError.exit_code,
            "edgekit: error: --runs",
        ),
        (["{model}", "--key", "{missing}", "--devices", "x"], 5, "edgekit: error: deployment key"),
        (["{model}", "--key", "{key}", "--devices", "nobody"], CONFIG_EXIT, "edgekit: error: no device"),
        (["{model}", "--key", "{key}", "--all", "--record", "{folder}"], 6, "edgekit: error:"),
    ],
)
def test_fleet_bench_bad_input_is_one_line(tmp_path, broker, detector, keys, args, code, start) -> None:
    values = {
        "model": str(detector),
        "key": str(keys[0]),
        "missing": str(tmp_path / "none.key"),
        "folder": str(tmp_path),
    }
    result = run_edgekit(
        "fleet", "bench", *[a.format(**values) for a in args], "--broker", f"mqtt://127.0.0.1:{broker.port}",
        timeout=120,
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), lines
