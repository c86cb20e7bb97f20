"""``edgekit run`` (the on-device daemon) and ``edgekit watch`` (what devices publish)."""

from __future__ import annotations

import collections
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import typer

from edgekit.cli.output import emit_json, stdout
from edgekit.errors import ConfigError, require_extra


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def run(
    config: Path = typer.Option(None, "--config", "-c", help="Daemon YAML config; flags override it."),
    model: Path = typer.Option(None, "--model", help="Artifact to run, with its manifest beside it."),
    source: str = typer.Option(None, "--source", help="Camera index, /dev/videoN, video file, image folder or URL."),
    loop: bool = typer.Option(None, "--loop/--no-loop", help="Restart a file or folder source when it ends."),
    broker: str = typer.Option(None, "--broker", help="mqtt://HOST:PORT or mqtts://HOST:PORT."),
    device_id: str = typer.Option(None, "--device-id", help="Topic prefix: edgekit/<device-id>/."),
    qos: int = typer.Option(None, "--qos", help="QoS of results (0, 1, 2)."),
    username: str = typer.Option(
        None, "--username", help="Broker user (password from EDGEKIT_MQTT_PASSWORD or --password-file)."
    ),
    password_file: Path = typer.Option(None, "--password-file", help="File holding the broker password."),
    ca_file: Path = typer.Option(None, "--ca-file", help="CA certificate for TLS."),
    buffer: Path = typer.Option(None, "--buffer", help="On-disk outbox for results while the broker is away."),
    buffer_max: int = typer.Option(None, "--buffer-max", help="Results the outbox holds before dropping the oldest."),
    buffer_max_mb: float = typer.Option(
        None, "--buffer-max-mb", help="Megabytes of results the outbox holds before dropping the oldest."
    ),
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after this many results."),
    max_fps: float = typer.Option(None, "--max-fps", help="Read the source no faster than this."),
    stall_timeout: float = typer.Option(
        None, "--stall-timeout", help="Seconds without a frame before a live source is reopened (default 5)."
    ),
    threads: int = typer.Option(None, "--threads", help="Inference threads."),
    inference: str = typer.Option(
        None,
        "--inference",
        help="Where the model runs: in-process (the default) or process (one of its own, shared-memory frames).",
        metavar="WHERE",
    ),
    stats_interval: float = typer.Option(None, "--stats-interval", help="Seconds between stats messages."),
    metrics_port: int = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on this port."),
    metrics_host: str = typer.Option(
        None, "--metrics-host", help="Address the metrics endpoint listens on (default 127.0.0.1; 0.0.0.0 for all)."
    ),
    homeassistant: bool = typer.Option(
        None, "--homeassistant/--no-homeassistant", help="Publish Home Assistant MQTT discovery configs."
    ),
    homeassistant_prefix: str = typer.Option(
        None, "--homeassistant-prefix", metavar="PREFIX", help="Home Assistant's discovery prefix (homeassistant)."
    ),
    mqtt_version: str = typer.Option(
        None, "--mqtt-version", help="auto (5, falling back to 3.1.1), 5 or 3.1.1.", metavar="VERSION"
    ),
    require_broker: bool = typer.Option(
        None,
        "--require-broker/--no-require-broker",
        help="Exit (code 15) when the first connection to the broker fails, instead of buffering results.",
    ),
    trust_key: list[Path] = typer.Option(
        None,
        "--trust-key",
        metavar="FILE",
        help="Accept deployments signed by this public key (edgekit fleet keygen's .pub); repeatable.",
    ),
    deploy_max_mb: float = typer.Option(
        None, "--deploy-max-mb", metavar="MB", help="Largest deployment bundle taken (default 512 MB)."
    ),
    as_json: bool = typer.Option(False, "--json", help="At the end, print the run's summary as JSON on stdout."),
) -> None:
    """Run a model on a camera or video and publish results over MQTT until stopped."""
    require_extra("paho", "device")
    require_extra("cv2", "device")
    from edgekit.daemon.config import load_config
    from edgekit.daemon.service import Daemon

    settings = load_config(
        config,
        {
            "model": model,
            "source": source,
            "loop": loop,
            "broker": broker,
            "device_id": device_id,
            "qos": qos,
            "username": username,
            "password_file": password_file,
            "ca_file": ca_file,
            "buffer": buffer,
            "buffer_max": buffer_max,
            "buffer_max_mb": buffer_max_mb,
            "max_frames": max_frames,
            "max_fps": max_fps,
            "stall_timeout": stall_timeout,
            "threads": threads,
            "inference": inference,
            "stats_interval": stats_interval,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host,
            "homeassistant": homeassistant,
            "homeassistant_prefix": homeassistant_prefix,
            "mqtt_version": mqtt_version,
            "require_broker": require_broker,
            "trust_key": trust_key or None,
            "deploy_max_mb": deploy_max_mb,
        },
    )
    _setup_logging()
    daemon = Daemon(settings)
    daemon.install_signal_handlers()
    summary = daemon.run()
    if as_json:
        emit_json(summary)
    else:
        stdout.print(
            f"stopped: {summary['results']} results, {summary['skipped_frames']} frames skipped, "
            f"{summary['buffered']} still buffered for the broker, {summary['dropped_overflow']} dropped on overflow"
            + (f", {summary['dropped_disk_full']} dropped on a full disk" if summary["dropped_disk_full"] else "")
        )


def watch(
    broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="mqtt://HOST:PORT."),
    device_id: str = typer.Option("+", "--device-id", help="Device to watch (default: all)."),
    count: int = typer.Option(None, "--count", help="Stop after this many messages."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this many seconds."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line: topic and payload."),
) -> None:
    """Print what devices publish: status, results and stats, live."""
    require_extra("paho", "device")
    from edgekit.daemon.broker_address import BrokerAddress
    from edgekit.daemon.mqtt_protocol import connect_with_fallback, new_client

    address = BrokerAddress.parse(broker)
    if count is not None and count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    # The MQTT client's thread only queues what arrives; this thread prints. A print that blocks
    # (a pipe nobody reads, a paused pager) then blocks this thread, where Ctrl-C interrupts it,
    # and never the client's, which the clean-up below joins. A deque and a short sleep, not a
    # queue.Queue: Ctrl-C landing inside Queue.get can leave its lock held, and the client's
    # thread would then wait on that lock for ever while the clean-up waits for the thread.
    arrived: collections.deque[str] = collections.deque()

    def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        # Runs on every (re)connect: a restarted broker gets the subscription again.
        client.subscribe(f"edgekit/{device_id}/#", qos=1)

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        text = message.payload.decode("utf-8", errors="replace")
        # Plain writes, one message per line: a terminal's width must never fold a JSON payload.
        if as_json:
            try:
                payload: Any = json.loads(text)
            except json.JSONDecodeError:
                payload = text
            arrived.append(json.dumps({"topic": message.topic, "payload": payload}))
        else:
            arrived.append(f"{time.strftime('%H:%M:%S')} {message.topic} {text}")

    def make_client(protocol: int) -> Any:
        client = new_client(protocol)
        client.on_connect = on_connect
        client.on_message = on_message
        return client

    client = connect_with_fallback(make_client, address.host, address.port)
    deadline = None if seconds is None else time.monotonic() + seconds
    seen = 0
    try:
        while count is None or seen < count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if not arrived:
                time.sleep(0.02 if left is None else max(0.0, min(0.02, left)))
                continue
            line = arrived.popleft()
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()


def broker(
    port: int = typer.Option(1883, "--port", help="Port to listen on (loopback)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
) -> None:
    """An embedded MQTT broker (amqtt), for trying edgekit with nothing installed."""
    from edgekit.daemon.embedded_broker import serve_forever

    serve_forever(host, port)
