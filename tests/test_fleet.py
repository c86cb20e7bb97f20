"""`edgekit fleet status` against a real Mosquitto: daemons that run, that stopped, and bad input."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest

from edgekit.errors import BrokerError, ConfigError
from tools.mqtt_brokers import Mosquitto, free_port

from .conftest import run_edgekit
from .test_daemon import daemon_log, start_daemon, terminate


@pytest.fixture
def broker(tmp_path):
    mosquitto = Mosquitto(tmp_path / "broker").start()
    yield mosquitto
    mosquitto.stop()


def fleet_status(port: int, *extra: str) -> dict:
    result = run_edgekit("fleet", "status", "--broker", f"mqtt://127.0.0.1:{port}", "--json", *extra, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_fleet_status_shows_a_running_device_then_the_same_device_stopped(tmp_path, broker, detector, video) -> None:
    from edgekit.manifest import load_manifest

    daemon = start_daemon(
        tmp_path, detector, video, f"mqtt://127.0.0.1:{broker.port}", "cam-07", "--loop", "--stats-interval", "0.5"
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "stats:" not in daemon_log(tmp_path):
            time.sleep(0.2)
        started = time.monotonic()
        (row,) = fleet_status(broker.port)["devices"]
        assert time.monotonic() - started < 30
        manifest = load_manifest(detector)
        assert manifest is not None
        assert row["device_id"] == "cam-07" and row["online"] and row["status"] == "online"
        assert row["model"] == detector.name and row["sha256"] == manifest.sha256
        assert row["fps"] is not None and row["buffered"] is not None and row["last_seen_s"] < 30
        assert row["edgekit"] and row["free_disk_mb"] > 0
    finally:
        terminate(daemon)
    (row,) = fleet_status(broker.port)["devices"]
    assert row["status"] == "offline" and not row["online"]
    assert row["model"] == detector.name, "a stopped device still says what it ran, and when it was last heard of"
    assert row["last_seen_s"] is not None


def test_fleet_status_lists_every_device_from_retained_topics_in_seconds(tmp_path, broker) -> None:
    """Fifty devices' retained topics (as daemons leave them): all in the table, in seconds."""
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    now = time.time()
    for index in range(50):
        prefix = f"edgekit/cam-{index:02d}"
        info = {"device_id": f"cam-{index:02d}", "edgekit": "0", "model": {"name": "m.tflite", "sha256": "ab" * 32}}
        stats = {"ts": now - index, "inference_fps": 30.0, "latency_p99_ms": 5.0, "buffered": index}
        publisher.publish(f"{prefix}/status", "online" if index % 5 else "offline", qos=1, retain=True)
        publisher.publish(f"{prefix}/info", json.dumps(info), qos=1, retain=True)
        publisher.publish(f"{prefix}/stats", json.dumps(stats), qos=1, retain=True).wait_for_publish(5)
    publisher.publish("edgekit/not-a-daemon/stats", "garbage", qos=1, retain=True).wait_for_publish(5)
    publisher.loop_stop()
    publisher.disconnect()

    started = time.monotonic()
    rows = fleet_status(broker.port)["devices"]
    elapsed = time.monotonic() - started
    assert [r["device_id"] for r in rows if r["device_id"].startswith("cam-")] == [f"cam-{i:02d}" for i in range(50)]
    assert sum(r["online"] for r in rows) == 40
    assert rows[7]["buffered"] == 7 and rows[7]["fps"] == 30.0
    assert elapsed < 30  # a process start with imports; the table itself waits 0.3 s past the last message

    text = run_edgekit("fleet", "status", "--broker", f"mqtt://127.0.0.1:{broker.port}", timeout=60)
    assert text.returncode == 0 and "51 devices, 40 online" in text.stdout, text.stdout


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["--broker", "ftp://x"], ConfigError.exit_code, "edgekit: error: "),
        (["--wait", "0"], ConfigError.exit_code, "edgekit: error: --wait must be more than 0 seconds, got 0"),
        (["--broker", "mqtt://127.0.0.1:{port}"], BrokerError.exit_code, "edgekit: error: cannot reach the broker"),
    ],
)
def test_fleet_status_bad_input_is_one_line(args: list[str], code: int, line: str) -> None:
    port = free_port()
    result = run_edgekit("fleet", "status", *[a.format(port=port) for a in args], timeout=60)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines


def test_homeassistant_discovery_configs_render_against_what_the_daemon_publishes(
    tmp_path, broker, detector, video
) -> None:
    """--homeassistant: retained discovery configs, one device, and every value template renders
    (with Jinja2, as Home Assistant does) to a value from the daemon's real stats and results."""
    import jinja2

    from tools.mqtt_brokers import Recorder

    seen: dict[str, dict] = {}
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe("homeassistant/#", qos=1)
    watcher.on_message = lambda c, u, m: seen.__setitem__(m.topic, {"retain": m.retain, **json.loads(m.payload)})
    recorder = Recorder(broker.port, "cam-h")
    daemon = start_daemon(
        tmp_path, detector, video, f"mqtt://127.0.0.1:{broker.port}", "cam-h", "--loop", "--max-fps", "20",
        "--stats-interval", "0.5", "--homeassistant",
    )  # fmt: skip
    try:
        assert recorder.wait_for(lambda r: len(r.of("stats")) >= 2 and len(r.results()) >= 5, 90), daemon_log(tmp_path)
    finally:
        terminate(daemon)
        recorder.client.loop_stop()
    watcher.connect("127.0.0.1", broker.port)  # after the daemon stopped: the configs are retained
    watcher.loop_start()
    deadline = time.monotonic() + 10
    while len(seen) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    watcher.loop_stop()
    assert sorted(seen) == sorted(
        f"homeassistant/sensor/cam-h/{key}/config"
        for key in ("fps", "latency_p50", "latency_p99", "buffered", "last_result")
    )
    payloads = {"stats": recorder.of("stats")[-1], "results": recorder.results()[-1]}
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for config in seen.values():
        assert config["retain"] and config["availability_topic"] == "edgekit/cam-h/status"
        assert config["device"]["identifiers"] == ["edgekit_cam-h"] and config["device"]["model"] == detector.name
        kind = config["state_topic"].rsplit("/", 1)[-1]
        rendered = environment.from_string(config["value_template"]).render(value_json=payloads[kind]).strip()
        assert rendered not in ("", "None"), (config["name"], rendered)
        if config.get("unit_of_measurement"):
            float(rendered)  # a number Home Assistant can chart
