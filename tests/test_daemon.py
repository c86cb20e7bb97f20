"""`edgekit run` as a real process against a real Mosquitto: delivery, faults, shutdown, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.converters.pipeline import ConvertRequest, convert
from edgekit.errors import BrokerError, ConfigError, DataError, InputNotFoundError, SourceError
from edgekit.formats import Precision, get_format
from tools.mqtt_brokers import CuttableProxy, Mosquitto, Recorder, free_port, retained_status

from .conftest import mount_small_tmpfs


@pytest.fixture
def broker(tmp_path):
    mosquitto = Mosquitto(tmp_path / "broker").start()
    yield mosquitto
    mosquitto.stop()


def start_daemon(
    tmp_path: Path, model: Path, source: object, broker_url: str, device_id: str, *extra: str
) -> subprocess.Popen:
    """`edgekit run` as a real process; its stderr goes to tmp_path/daemon.log."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - closed with the process
    args = ["--model", str(model), "--source", str(source), "--broker", broker_url, "--device-id", device_id, *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit", "run", "--buffer", str(tmp_path / "outbox.sqlite"), *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )


def terminate(daemon: subprocess.Popen) -> None:
    """SIGTERM, as a service manager stops it, and wait for the exit."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=15)


def daemon_log(tmp_path: Path) -> str:
    return (tmp_path / "daemon.log").read_text()


def seqs(recorder: Recorder) -> list[int]:
    return [r["seq"] for r in recorder.results()]


def no_gaps(values: list[int]) -> bool:
    unique = sorted(set(values))
    return unique == list(range(len(unique)))


def test_results_arrive_in_order_with_status_and_stats(tmp_path, broker, detector, video) -> None:
    recorder = Recorder(broker.port, "cam1")
    daemon = start_daemon(
        tmp_path,
        str(detector),
        str(video),
        f"mqtt://127.0.0.1:{broker.port}",
        "cam1",
        "--loop",
        "--max-frames",
        "40",
        "--stats-interval",
        "0.5",
        "--json",
    )
    out, _ = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, daemon_log(tmp_path)
    assert recorder.wait_for(lambda r: len(r.results()) >= 40), (len(seqs(recorder)), out, daemon_log(tmp_path)[-2000:])
    results = recorder.results()
    assert seqs(recorder) == list(range(40))
    first = results[0]
    assert {"device_id", "run_id", "seq", "frame_id", "ts", "model", "latency_ms", "predictions"} <= set(first)
    assert all(r["run_id"] == first["run_id"] for r in results)
    frame_ids = [r["frame_id"] for r in results]
    assert frame_ids == sorted(frame_ids)  # may skip (stale frames dropped), never go back
    stats = recorder.of("stats")
    assert stats and {
        "camera_fps",
        "inference_fps",
        "skipped_frames",
        "latency_p50_ms",
        "latency_p99_ms",
        "buffered",
    } <= set(stats[0])
    assert recorder.of("status")[0] == "online"
    assert retained_status(broker.port, "cam1") == "offline"
    summary = json.loads(out)
    assert summary["results"] == 40 and summary["buffered"] == 0
    recorder.close()


def test_network_cut_mid_run_loses_nothing(tmp_path, broker, detector, video) -> None:
    recorder = Recorder(broker.port, "cam2")
    proxy = CuttableProxy(broker.port)
    proxy.restore()
    daemon = start_daemon(
        tmp_path, str(detector), str(video), f"mqtt://127.0.0.1:{proxy.port}", "cam2", "--loop", "--max-fps", "25"
    )
    try:
        assert recorder.wait_for(lambda r: len(r.results()) >= 20, timeout=60), daemon_log(tmp_path)
        proxy.cut()
        time.sleep(10)  # results produced now go to the on-disk outbox
        proxy.restore()
        produced_during_cut = 10 * 25 * 0.5
        assert recorder.wait_for(lambda r: len(set(seqs(r))) >= 20 + produced_during_cut, timeout=60)
    finally:
        terminate(daemon)
        proxy.close()
    assert daemon.returncode == 0
    assert recorder.wait_for(lambda r: no_gaps(seqs(r)), timeout=20), sorted(set(seqs(recorder)))
    log = daemon_log(tmp_path)
    assert "buffering results on disk" in log
    # The proxy accepts and closes during the cut: that is the network, not a broker without MQTT 5.
    assert "speaking MQTT 3.1.1" not in log, log
    recorder.close()


def test_broker_unreachable_at_start_then_delivered(tmp_path, broker, detector, video) -> None:
    recorder = Recorder(broker.port, "cam3")
    proxy = CuttableProxy(broker.port)  # down: connections refused
    daemon = start_daemon(
        tmp_path, str(detector), str(video), f"mqtt://127.0.0.1:{proxy.port}", "cam3", "--loop", "--max-fps", "10"
    )
    try:
        time.sleep(3)
        assert daemon.poll() is None, daemon_log(tmp_path)  # running, buffering
        assert recorder.results() == []
        proxy.restore()
        assert recorder.wait_for(lambda r: len(set(seqs(r))) >= 40, timeout=60), daemon_log(tmp_path)
    finally:
        terminate(daemon)
        proxy.close()
    assert recorder.wait_for(lambda r: no_gaps(seqs(r)), timeout=10), sorted(set(seqs(recorder)))
    assert min(seqs(recorder)) == 0
    recorder.close()


def test_sigterm_stops_within_5s_and_a_restart_delivers_what_was_buffered(tmp_path, broker, detector, video) -> None:
    proxy = CuttableProxy(broker.port)  # the broker is unreachable for this whole run
    daemon = start_daemon(
        tmp_path, str(detector), str(video), f"mqtt://127.0.0.1:{proxy.port}", "cam4", "--max-fps", "20"
    )
    time.sleep(4)
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    out, _ = daemon.communicate(timeout=15)
    assert daemon.returncode == 0 and time.monotonic() - started < 5.0
    buffered = int(out.split(",")[2].split()[0])  # "stopped: N results, M frames skipped, B still buffered …"
    assert buffered > 0

    recorder = Recorder(broker.port, "cam4")
    restart = start_daemon(
        tmp_path, str(detector), str(video), f"mqtt://127.0.0.1:{broker.port}", "cam4", "--max-frames", "5"
    )
    restart.communicate(timeout=60)
    assert recorder.wait_for(lambda r: len({x["run_id"] for x in r.results()}) == 2, timeout=20)
    runs = {}
    for result in recorder.results():
        runs.setdefault(result["run_id"], []).append(result["seq"])
    earlier = [run for run, s in runs.items() if sorted(set(s)) == list(range(buffered))]
    assert earlier, (buffered, runs)
    (later,) = set(runs) - set(earlier)
    assert min(runs[later]) == 0, "the restart counts from 0 under a run_id of its own"
    assert retained_status(broker.port, "cam4") == "offline"
    recorder.close()
    proxy.close()


def test_commands_pause_resume_and_malformed_are_ignored(tmp_path, broker, detector, video) -> None:
    import paho.mqtt.publish as publish

    recorder = Recorder(broker.port, "cam5")
    daemon = start_daemon(
        tmp_path, str(detector), str(video), f"mqtt://127.0.0.1:{broker.port}", "cam5", "--loop", "--max-fps", "20"
    )
    try:
        assert recorder.wait_for(lambda r: len(r.results()) >= 5, timeout=60), daemon_log(tmp_path)
        for garbage in (b"{not json", b'{"cmd": 5}', b"explode", b'{"cmd": "threshold", "value": 7}'):
            publish.single("edgekit/cam5/cmd", garbage, hostname="127.0.0.1", port=broker.port, qos=1)
        publish.single("edgekit/cam5/cmd", b'{"cmd": "pause"}', hostname="127.0.0.1", port=broker.port, qos=1)
        time.sleep(1.0)
        paused_at = len(recorder.results())
        time.sleep(1.5)
        assert len(recorder.results()) <= paused_at + 1
        publish.single("edgekit/cam5/cmd", b"resume", hostname="127.0.0.1", port=broker.port, qos=1)
        assert recorder.wait_for(lambda r: len(r.results()) >= paused_at + 10, timeout=20)
        assert daemon.poll() is None
    finally:
        terminate(daemon)
    log = daemon_log(tmp_path)
    assert log.count("ignored command") == 4, log
    assert no_gaps(seqs(recorder))
    recorder.close()


def test_source_that_disappears_is_retried_without_crashing(tmp_path, broker, detector, video) -> None:
    moving = Path(shutil.copy(video, tmp_path / "clip.avi"))
    recorder = Recorder(broker.port, "cam6")
    daemon = start_daemon(
        tmp_path,
        str(detector),
        str(moving),
        f"mqtt://127.0.0.1:{broker.port}",
        "cam6",
        "--loop",
        "--max-fps",
        "30",
        "--stats-interval",
        "0.5",
    )
    try:
        assert recorder.wait_for(lambda r: len(r.results()) >= 3, timeout=60), daemon_log(tmp_path)
        moving.unlink()
        assert recorder.wait_for(lambda r: any(s["source_reconnects"] > 0 for s in r.of("stats")), timeout=30)
        assert daemon.poll() is None
    finally:
        terminate(daemon)
    assert daemon.returncode == 0
    recorder.close()


def test_a_classifier_on_an_image_folder_over_mqtt_311(tmp_path, broker, trained) -> None:
    import cv2
    import numpy as np

    out = tmp_path / "digits.tflite"
    source = trained["digits-cnn"] / "model.keras"
    model = convert(ConvertRequest(source=source, target=get_format("tflite"), precision=Precision.INT8, out=out))
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        cv2.imwrite(str(folder / f"{index:02d}.png"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    recorder = Recorder(broker.port, "cls")
    daemon = start_daemon(
        tmp_path, model["artifact"], folder, f"mqtt://127.0.0.1:{broker.port}", "cls",
        "--mqtt-version", "3.1.1", "--stats-interval", "0.2", "--json",
    )  # fmt: skip
    out_text, _ = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, daemon_log(tmp_path)
    summary = json.loads(out_text)
    assert summary["results"] == 6 and summary["mqtt_version"] == "3.1.1", "a folder without --loop ends"
    assert recorder.wait_for(lambda r: len(r.results()) >= 6, timeout=20)
    labels = [str(d) for d in range(10)]
    for result in recorder.results():
        predictions = result["predictions"]
        assert 1 <= len(predictions) <= 3, "the top class, and up to 3 above the threshold"
        assert all(p["label"] in labels for p in predictions)
        scores = [p["score"] for p in predictions]
        assert scores == sorted(scores, reverse=True)
    recorder.close()


def test_the_threshold_command_filters_what_follows(tmp_path, broker, detector, video) -> None:
    import paho.mqtt.publish as publish

    recorder = Recorder(broker.port, "thr")
    daemon = start_daemon(
        tmp_path, str(detector), str(video), f"mqtt://127.0.0.1:{broker.port}", "thr",
        "--loop", "--max-fps", "30", "--stats-interval", "0.2",
    )  # fmt: skip
    try:
        assert recorder.wait_for(lambda r: len(r.results()) >= 30, timeout=60), daemon_log(tmp_path)
        # A threshold between the scores the default 0.3 lets through, so the command visibly filters.
        scores = sorted(p["score"] for r in recorder.results() for p in r["predictions"])
        value = round((scores[0] + scores[-1]) / 2, 4) if scores and scores[-1] > scores[0] else 0.95
        command = json.dumps({"cmd": "threshold", "value": value}).encode()
        publish.single("edgekit/thr/cmd", command, hostname="127.0.0.1", port=broker.port, qos=1)
        assert recorder.wait_for(lambda r: any(s["threshold"] == value for s in r.of("stats")), timeout=20)
        after = len(recorder.results())
        assert recorder.wait_for(lambda r: len(r.results()) >= after + 30, timeout=30)
    finally:
        terminate(daemon)
    # Results go through the outbox, stats straight out: skip a margin scored before the change.
    later = recorder.results()[after + 10 :]
    assert later and all(p["score"] >= value for r in later for p in r["predictions"])
    if scores and scores[-1] > scores[0]:
        assert any(p["score"] < value for r in recorder.results()[:after] for p in r["predictions"])
    assert "ignored command" not in daemon_log(tmp_path)
    recorder.close()


def test_a_stream_that_stops_and_comes_back_is_reopened(tmp_path, broker, detector, video) -> None:
    """The camera's server goes away for a few seconds and returns on the same port."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video.parent))

    def serve(port: int = 0) -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    server = serve()
    port = server.server_address[1]
    recorder = Recorder(broker.port, "gap")
    daemon = start_daemon(
        tmp_path, str(detector), f"http://127.0.0.1:{port}/{video.name}", f"mqtt://127.0.0.1:{broker.port}", "gap",
        "--stall-timeout", "1", "--stats-interval", "0.3",
    )  # fmt: skip
    try:
        assert recorder.wait_for(lambda r: len(r.results()) >= 5, timeout=60), daemon_log(tmp_path)
        server.shutdown()
        server.server_close()
        assert recorder.wait_for(lambda r: any(s["source_gap_s"] >= 2 for s in r.of("stats")), timeout=30)
        assert daemon.poll() is None and recorder.of("stats")[-1]["connected"], "the daemon carries on"
        before = len(recorder.results())
        server = serve(port)
        assert recorder.wait_for(lambda r: len(r.results()) >= before + 5, timeout=30), daemon_log(tmp_path)
        # The stats after the first frame back tell the gap that ended and the reopens it took.
        assert recorder.wait_for(
            lambda r: any(s["longest_source_gap_s"] >= 2 and s["source_reconnects"] >= 1 for s in r.of("stats")),
            timeout=10,
        )
    finally:
        terminate(daemon)
        server.shutdown()
    assert daemon.returncode == 0
    assert no_gaps(seqs(recorder))
    recorder.close()


# ---------------------------------------------------------------------------------------------
# TLS and passwords


@pytest.fixture
def tls_broker(tmp_path):
    folder = tmp_path / "tls"
    folder.mkdir()
    subj = "/CN=edgekit-test-ca"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=folder)  # noqa: E731
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        subj,
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    run("mosquitto_passwd", "-b", "-c", "passwd", "pi", "s3cret")
    port = free_port()
    extra = (
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {folder}/passwd\n"
        f"cafile {folder}/ca.crt\ncertfile {folder}/server.crt\nkeyfile {folder}/server.key\n"
    )
    mosquitto = Mosquitto(tmp_path / "tls-broker", extra=extra, port=port).start()
    yield mosquitto, folder
    mosquitto.stop()


def test_tls_with_password(tmp_path, tls_broker, detector, video) -> None:
    mosquitto, folder = tls_broker
    (tmp_path / "password").write_text("s3cret\n")
    daemon = start_daemon(
        tmp_path,
        str(detector),
        str(video),
        f"mqtts://127.0.0.1:{mosquitto.port}",
        "tls1",
        "--max-frames",
        "5",
        "--ca-file",
        str(folder / "ca.crt"),
        "--username",
        "pi",
        "--password-file",
        str(tmp_path / "password"),
        "--json",
    )
    out, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, daemon_log(tmp_path)
    summary = json.loads(out)
    assert summary["broker_connects"] >= 1 and summary["buffered"] == 0, daemon_log(tmp_path)


def test_wrong_password_is_one_clear_line(tmp_path, tls_broker, detector, video) -> None:
    mosquitto, folder = tls_broker
    env_password = {"EDGEKIT_MQTT_PASSWORD": "wrong"}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_password}
    done = subprocess.run(
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
            f"mqtts://127.0.0.1:{mosquitto.port}",
            "--ca-file",
            str(folder / "ca.crt"),
            "--username",
            "pi",
            "--device-id",
            "tls2",
            "--buffer",
            str(tmp_path / "o.sqlite"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == BrokerError.exit_code
    errors = [line for line in done.stderr.splitlines() if line.startswith("edgekit: error:")]
    assert len(errors) == 1 and "refused" in errors[0] and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# bad input: one clear line each


def bad_run(cli, *args: str) -> tuple[int, str]:
    result = cli("run", *args)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("edgekit: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return result.exit_code, lines[-1]


def test_missing_model(cli, video, tmp_path) -> None:
    code, _ = bad_run(cli, "--model", str(tmp_path / "none.tflite"), "--source", str(video))
    assert code == InputNotFoundError.exit_code


def test_model_whose_input_does_not_match_its_manifest(cli, detector, video, tmp_path) -> None:
    model = Path(shutil.copy(detector, tmp_path / "m.tflite"))
    manifest = json.loads(Path(str(detector) + ".manifest.json").read_text())
    manifest["preprocessing"]["size"] = [32, 32]
    Path(str(model) + ".manifest.json").write_text(json.dumps(manifest))
    code, line = bad_run(cli, "--model", str(model), "--source", str(video), "--buffer", str(tmp_path / "o.sqlite"))
    assert code == DataError.exit_code and "manifest" in line


def test_unreadable_source(cli, detector, tmp_path) -> None:
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all")
    code, _ = bad_run(cli, "--model", str(detector), "--source", str(junk), "--buffer", str(tmp_path / "o.sqlite"))
    assert code == SourceError.exit_code
    code, _ = bad_run(cli, "--model", str(detector), "--source", str(tmp_path / "none.mp4"))
    assert code == SourceError.exit_code


@pytest.mark.parametrize("url", ["http://host:1883", "mqtt://", "mqtt://host:notaport"])
def test_bad_broker_url(cli, detector, video, url: str, tmp_path) -> None:
    code, line = bad_run(
        cli, "--model", str(detector), "--source", str(video), "--broker", url, "--buffer", str(tmp_path / "o.sqlite")
    )
    assert code == ConfigError.exit_code and "broker URL" in line


def test_config_file_errors_name_the_key(cli, tmp_path, detector) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(f"model: {detector}\nqos: 7\n")
    code, line = bad_run(cli, "--config", str(config))
    assert code == ConfigError.exit_code and "qos" in line
    config.write_text(f"model: {detector}\nsorce: 0\n")
    code, line = bad_run(cli, "--config", str(config))
    assert code == ConfigError.exit_code and "sorce" in line


def test_a_misspelt_key_gets_the_closest_and_every_problem_is_listed(cli, tmp_path, detector) -> None:
    config = tmp_path / "daemon.yaml"
    config.write_text(f"model: {detector}\nbrokr: mqtt://hub:1883\nqos: 7\n")
    code, line = bad_run(cli, "--config", str(config))
    assert code == ConfigError.exit_code
    assert "brokr: unknown setting (did you mean 'broker'?)" in line and "qos:" in line


def test_a_first_connection_that_fails_is_one_warning_naming_the_broker(tmp_path, detector, video) -> None:
    """A typo in --broker must not pass silently: one WARNING with the URL and the reason, then the
    daemon goes on and keeps its results on disk."""
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    daemon = start_daemon(tmp_path, str(detector), str(video), url, "typo", "--max-frames", "5")
    out, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0
    warnings = [line for line in daemon_log(tmp_path).splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert f"cannot connect to the broker at {url}: Connection refused" in warnings[0]
    assert "5 still buffered" in out


def test_require_broker_makes_an_unreachable_broker_an_error(tmp_path, detector, video) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    daemon = start_daemon(tmp_path, str(detector), str(video), url, "strict", "--require-broker")
    daemon.wait(timeout=60)
    assert daemon.returncode == BrokerError.exit_code
    lines = daemon_log(tmp_path).strip().splitlines()
    assert lines[-1] == (
        f"edgekit: error: cannot connect to the broker at {url}: Connection refused; check --broker, "
        "or leave out --require-broker to buffer results until it answers"
    )
    assert not any("WARNING" in line for line in lines)  # the error says it once


def test_run_and_watch_work_with_the_embedded_broker_alone(tmp_path, detector, video) -> None:
    """What a bare laptop has: `edgekit broker` (amqtt, MQTT 3.1.1 only) and edgekit's own clients.
    Both fall back from MQTT 5 by themselves; every result arrives, in order."""
    from edgekit.daemon.embedded_broker import EmbeddedBroker

    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with EmbeddedBroker("127.0.0.1", port):
        watch = subprocess.Popen(
            [sys.executable, "-m", "edgekit", "watch", "--broker", url, "--device-id", "laptop", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            time.sleep(4)  # watch connects (falling back to 3.1.1) and subscribes
            daemon = start_daemon(tmp_path, str(detector), str(video), url, "laptop", "--require-broker")
            out, _ = daemon.communicate(timeout=120)
            assert daemon.returncode == 0, daemon_log(tmp_path)
            assert "0 still buffered" in out
            time.sleep(2)
        finally:
            watch.send_signal(signal.SIGINT)
            printed, errors = watch.communicate(timeout=30)
    assert watch.returncode == 0, errors
    messages = [json.loads(line) for line in printed.splitlines()]
    results = [m["payload"]["seq"] for m in messages if m["topic"] == "edgekit/laptop/results"]
    assert results == list(range(90))
    assert {"topic": "edgekit/laptop/status", "payload": "online"} in messages
    log = daemon_log(tmp_path)
    assert "speaking MQTT 3.1.1" in log and "WARNING" not in log


def test_prometheus_metrics(tmp_path, broker, detector, video) -> None:
    import urllib.request

    port = free_port()
    recorder = Recorder(broker.port, "cam7")
    daemon = start_daemon(
        tmp_path,
        str(detector),
        str(video),
        f"mqtt://127.0.0.1:{broker.port}",
        "cam7",
        "--loop",
        "--max-fps",
        "20",
        "--stats-interval",
        "120",  # nothing is copied into the metrics on a timer: values are read at each scrape
        "--metrics-port",
        str(port),
    )

    def scrape() -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "# TYPE edgekit_results_total counter" in text and "# TYPE edgekit_camera_fps gauge" in text
        found = {}
        for line in text.splitlines():
            if line.startswith("edgekit_") and '{device_id="cam7"}' in line:
                name, value = line.split('{device_id="cam7"}')
                found[name] = float(value)
        return found

    try:
        assert recorder.wait_for(lambda r: len(r.of("results")) >= 5, timeout=60), daemon_log(tmp_path)
        first = scrape()
        time.sleep(1.0)
        second = scrape()
        outside = _non_loopback_address()
        if outside is not None:  # the endpoint listens on loopback unless --metrics-host says otherwise
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://{outside}:{port}/metrics", timeout=2)
    finally:
        terminate(daemon)
    assert 0 < first["edgekit_results_total"] < second["edgekit_results_total"]
    assert first["edgekit_broker_connected"] == 1.0
    assert {"edgekit_dropped_overflow_total", "edgekit_buffered_bytes", "edgekit_source_reconnects_total"} <= set(first)
    recorder.close()


def _non_loopback_address() -> str | None:
    import socket

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_stream_url_source(tmp_path, broker, detector, video) -> None:
    """A network stream: the video served over HTTP on loopback, read through OpenCV's URL path."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    recorder = Recorder(broker.port, "cam8")
    daemon = start_daemon(tmp_path, str(detector), url, f"mqtt://127.0.0.1:{broker.port}", "cam8", "--max-frames", "10")
    try:
        daemon.communicate(timeout=60)
    finally:
        server.shutdown()
    assert daemon.returncode == 0, daemon_log(tmp_path)
    assert recorder.wait_for(lambda r: len(r.results()) >= 10, timeout=20)
    recorder.close()


def test_runs_on_a_device_install_without_tensorflow(tmp_path, broker, detector, video) -> None:
    """`pip install edgekit[device]` has no TensorFlow: the daemon must not import it."""
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'keras', 'tf2onnx', 'onnx', 'openvino'):\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "from edgekit.cli import main\n"
        "sys.argv = ['edgekit', 'run', '--model', sys.argv[1], '--source', sys.argv[2], '--broker', sys.argv[3],\n"
        "            '--device-id', 'notf', '--max-frames', '5', '--buffer', sys.argv[4], '--json']\n"
        "main()\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(detector),
            str(video),
            f"mqtt://127.0.0.1:{broker.port}",
            str(tmp_path / "o.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["results"] == 5


def test_watch_stops_on_ctrl_c_while_its_output_is_not_read(tmp_path: Path) -> None:
    """`edgekit watch | less`, paused: its prints block, and Ctrl-C must still stop it at once."""
    import paho.mqtt.client as mqtt

    broker = Mosquitto(tmp_path / "mosquitto").start()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    watch = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "watch", "--broker", f"mqtt://127.0.0.1:{broker.port}", "--device-id", "pi"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        time.sleep(4)  # connected and subscribed
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        payload = json.dumps({"detections": [{"label": "square", "score": 0.9}] * 40})
        for _ in range(300):  # far more than a pipe holds (64 KB), and nobody reads it
            publisher.publish("edgekit/pi/results", payload, qos=1).wait_for_publish(timeout=5)
        publisher.disconnect()
        publisher.loop_stop()
        time.sleep(1)
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=15) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
        broker.stop()


@pytest.mark.ci
def test_an_outbox_that_fills_its_disk_drops_and_counts_then_drains_when_the_broker_returns(
    tmp_path, broker, detector, video
) -> None:
    """A long outage on a small disk: the outbox stops at the filesystem's reserve (never the last
    byte, or it could neither checkpoint nor acknowledge), counts what it drops, and recovers."""
    import sqlite3

    disk = mount_small_tmpfs(tmp_path / "small", "8m")
    proxy = CuttableProxy(broker.port)  # the broker is away from the start
    recorder = Recorder(broker.port, "full")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "run", "--model", str(detector), "--source", str(video), "--loop",
         "--broker", f"mqtt://127.0.0.1:{proxy.port}", "--device-id", "full", "--stats-interval", "0.5",
         "--max-fps", "300",
         "--buffer", str(disk / "outbox.sqlite"), "--json"],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "daemon.log", "w"), text=True,  # noqa: SIM115
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "cannot grow" not in daemon_log(tmp_path):
            assert time.monotonic() < deadline and daemon.poll() is None, daemon_log(tmp_path)[-2000:]
            time.sleep(0.5)
        proxy.restore()
        assert recorder.wait_for(lambda r: any(s["buffered"] < 1000 for s in r.of("stats")), timeout=120), (
            [(s["buffered"], s["dropped_disk_full"]) for s in recorder.of("stats")][-3:],
            daemon_log(tmp_path)[-1500:],
        )
        # Recovered: the drop count holds still for 2 s (within 30 s of the drain).
        deadline = time.monotonic() + 30
        while True:
            dropped = recorder.of("stats")[-1]["dropped_disk_full"]
            time.sleep(2)
            latest = recorder.of("stats")[-1]
            if latest["dropped_disk_full"] == dropped or time.monotonic() > deadline:
                break
        assert dropped > 0 and latest["dropped_disk_full"] == dropped, "results are kept again"
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
        proxy.close()
        recorder.close()
    try:
        assert daemon.returncode == 0, daemon_log(tmp_path)[-2000:]
        assert json.loads(out)["dropped_disk_full"] >= dropped
        assert daemon_log(tmp_path).count("cannot grow") == 1, "one WARNING for the episode"
        connection = sqlite3.connect(disk / "outbox.sqlite")
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        connection.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _children(pid: int) -> list:  # type: ignore[type-arg]
    import psutil

    return psutil.Process(pid).children(recursive=True)


def test_the_model_runs_in_a_process_of_its_own_with_the_same_answers(tmp_path, broker, trained) -> None:
    """--inference process: the model in a child process. Its answers are the in-process model's,
    frame for frame (an image folder: the same frames in the same order each run)."""
    import cv2
    import numpy as np

    model = convert(
        ConvertRequest(
            source=trained["digits-cnn"] / "model.keras", target=get_format("tflite"), precision=Precision.INT8,
            out=tmp_path / "digits.tflite",
        )
    )["artifact"]  # fmt: skip
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for index in range(8):
        cv2.imwrite(str(folder / f"{index:02d}.png"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    answers = {}
    for where in ("process", "in-process"):
        recorder = Recorder(broker.port, where)
        run_dir = tmp_path / where
        run_dir.mkdir()
        daemon = start_daemon(
            run_dir, model, folder, f"mqtt://127.0.0.1:{broker.port}", where, "--inference", where, "--json"
        )
        out_text, _ = daemon.communicate(timeout=120)
        assert daemon.returncode == 0, daemon_log(run_dir)
        assert json.loads(out_text)["results"] == 8
        assert recorder.wait_for(lambda r: len(r.results()) >= 8, timeout=20)
        answers[where] = [(r["seq"], r["frame_id"], r["predictions"]) for r in recorder.results()]
        recorder.close()
    assert answers["process"] == answers["in-process"]
    assert [seq for seq, _, _ in answers["process"]] == list(range(8))


def test_an_inference_process_that_dies_is_one_line_and_a_daemon_killed_leaves_no_child(
    tmp_path, broker, detector, video
) -> None:
    import psutil

    from edgekit.errors import DeviceError

    daemon = start_daemon(
        tmp_path, detector, video, f"mqtt://127.0.0.1:{broker.port}", "dies", "--loop", "--inference", "process"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and " running " not in daemon_log(tmp_path):
        time.sleep(0.2)
    (child,) = [c for c in _children(daemon.pid) if "spawn_main" in " ".join(c.cmdline())]
    time.sleep(1.0)
    child.kill()  # the model's process crashes (a runtime's segfault, the OOM killer)
    daemon.wait(timeout=30)
    lines = [line for line in daemon_log(tmp_path).splitlines() if line.startswith("edgekit: error")]
    assert daemon.returncode == DeviceError.exit_code, daemon_log(tmp_path)[-2000:]
    assert lines == [
        "edgekit: error: the inference process ended while running the model (killed by signal 9); the model "
        "crashed its runtime or the machine ran out of memory; run with --inference in-process to see the "
        "runtime's own message"
    ]
    assert "Traceback" not in daemon_log(tmp_path)

    # SIGKILL of the daemon itself: its model process notices the closed pipe and leaves.
    restarted = start_daemon(
        tmp_path, detector, video, f"mqtt://127.0.0.1:{broker.port}", "dies", "--loop", "--inference", "process"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and daemon_log(tmp_path).count(" running ") < 1:
        time.sleep(0.2)
    time.sleep(2.0)
    orphans = _children(restarted.pid)
    assert orphans
    restarted.kill()
    restarted.wait(timeout=10)
    _, alive = psutil.wait_procs(orphans, timeout=15)

    def still_running(process: psutil.Process) -> bool:  # a zombie has left; only its parent may reap it
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    assert not [p for p in alive if still_running(p)]


def test_the_next_frame_is_handed_over_just_before_the_model_finishes() -> None:
    from edgekit.daemon.inference import HandOver

    timing = HandOver()
    timing.started(10.0)
    assert timing.due(10.0), "nothing measured yet: at once"
    timing.ran(0.150)  # a 150 ms detector
    timing.finished(0.002)  # 2 ms to post-process and publish
    timing.started(20.0)
    assert not timing.due(20.1), "a camera frame taken now would wait 50 ms behind the running one"
    assert timing.due(20.0 + 0.150 - timing.tail_s - HandOver.MARGIN_S + 1e-9)
