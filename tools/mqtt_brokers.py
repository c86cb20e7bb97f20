"""Real Mosquitto brokers for tests and benchmarks, a subscriber that records what arrives, and a loopback TCP
proxy that can cut the network between the daemon and the broker without stopping the broker."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class Mosquitto:
    """A broker of our own on a free loopback port, with its own config and data folder."""

    def __init__(self, folder: Path, *, extra: str = "", port: int | None = None) -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed: .ci/run installs it (apt-get install mosquitto)")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        config = self.folder / "mosquitto.conf"
        listener = self.extra or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        # As root, mosquitto drops to the `mosquitto` user, who cannot read pytest's private folders.
        user = "user root\n" if os.geteuid() == 0 else ""
        config.write_text(
            f"{user}persistence true\npersistence_location {self.folder}/\n"
            f"log_dest file {self.folder}/log.txt\n{listener}"
        )
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Recorder:
    """A persistent QoS 1 subscriber to edgekit/<device>/#, recording every message."""

    def __init__(self, port: int, device_id: str, **tls: Any) -> None:
        self.messages: list[tuple[str, Any, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{device_id}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"edgekit/{device_id}/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "recorder did not subscribe"

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        text = message.payload.decode()
        try:
            payload: Any = json.loads(text)
        except json.JSONDecodeError:
            payload = text
        with self.lock:
            self.messages.append((message.topic.rsplit("/", 1)[-1], payload, bool(message.retain)))

    def results(self) -> list[dict[str, Any]]:
        with self.lock:
            return [p for kind, p, _ in self.messages if kind == "results"]

    def of(self, kind: str) -> list[Any]:
        with self.lock:
            return [p for k, p, _ in self.messages if k == kind]

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_status(port: int, device_id: str, timeout: float = 5.0) -> str | None:
    """What a new subscriber is told about a device's status (the retained message)."""
    got: list[str] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"edgekit/{device_id}/status", qos=1)

    def on_message(c: Any, u: Any, message: Any) -> None:
        got.append(message.payload.decode())
        done.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return got[0] if got else None


class CuttableProxy:
    """Loopback TCP proxy to a broker: ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.up = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # the network is down: refused at once
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self._conns.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()
