"""The daemon's MQTT side, per the contract in DESIGN.md.

- ``edgekit/<id>/status``: retained ``offline`` set as the will before connecting, retained
  ``online`` on every connect, retained ``offline`` on a clean stop.
- Subscriptions (``cmd``) are made in ``on_connect``, so a broker restart renews them.
- A refused connection is reported as refused (``reason_code.is_failure``), never taken for
  connected; bad credentials stop the daemon with one clear line.
- Results go through the OfflineBuffer: published in order by one thread, removed on PUBACK.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edgekit.daemon.outbox import OfflineBuffer
from edgekit.errors import BrokerError, ConfigError

log = logging.getLogger("edgekit.daemon.mqtt")

# Reason codes that retrying will not fix: the broker will not take these credentials.
_FATAL_REFUSALS = ("Bad user name or password", "Not authorized", "Client identifier not valid", "Banned")
MAX_INFLIGHT = 64


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigError(f"broker URL '{url}' must start with mqtt:// or mqtts://")
        if not parsed.hostname:
            raise ConfigError(f"broker URL '{url}' has no host", hint="use mqtt://HOST:PORT")
        tls = parsed.scheme in ("mqtts", "ssl")
        try:
            port = parsed.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ConfigError(f"broker URL '{url}' has an invalid port") from exc
        return cls(parsed.hostname, port, tls)


@dataclass(frozen=True)
class BrokerSettings:
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    protocol: int = 5  # MQTT 5, or 4 for 3.1.1
    keepalive: int = 15


class DaemonLink:
    """One MQTT connection for a daemon: status, results through the outbox, commands in."""

    def __init__(
        self,
        settings: BrokerSettings,
        device_id: str,
        outbox: OfflineBuffer,
        on_command: Callable[[bytes], None],
    ) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self.address = BrokerAddress.parse(settings.url)
        self.prefix = f"edgekit/{device_id}"
        self._keepalive = settings.keepalive
        self.outbox = outbox
        self._on_command = on_command
        self.connected = threading.Event()
        self.fatal: BrokerError | None = None
        self.refusals = 0
        self.connects = 0
        self._inflight: dict[int, int] = {}  # paho mid → outbox id
        self._acked_early: set[int] = set()
        self._generation = 0  # bumped by notify(): a wake-up between query and wait is not lost
        self._last_sent = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = threading.Event()

        protocol = mqtt.MQTTv5 if settings.protocol == 5 else mqtt.MQTTv311
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id or f"edgekit-{device_id}",
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else True,
        )
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.reconnect_delay_set(min_delay=1, max_delay=8)
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if self.address.tls or settings.ca_file:
            client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(settings.tls_insecure)
        client.will_set(f"{self.prefix}/status", b"offline", qos=1, retain=True)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        client.on_message = self._message
        self.client = client
        self._sender = threading.Thread(target=self._send_loop, name="edgekit-mqtt-send", daemon=True)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background: a broker that is down now is retried with backoff."""
        self.client.connect_async(self.address.host, self.address.port, keepalive=self._keepalive)
        self.client.loop_start()
        self._sender.start()

    def stop(self, drain_seconds: float = 2.0) -> None:
        """Publish what the broker can take in ``drain_seconds``, then a retained offline, then leave."""
        deadline = time.monotonic() + drain_seconds
        # The broker may be (re)connecting right now: give it the whole grace period, not just
        # while connected; what it does not take stays in the outbox for the next start.
        while time.monotonic() < deadline and len(self.outbox) and self.fatal is None:
            time.sleep(0.02)
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self.connected.is_set():
            info = self.client.publish(f"{self.prefix}/status", b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.2, deadline - time.monotonic() + 1.0))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self._sender.join(timeout=1.0)

    # -- paho callbacks (paho's network thread) -----------------------------------------------

    def _connected(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.refusals += 1
            text = str(reason_code)
            log.warning("broker %s:%s refused the connection: %s", self.address.host, self.address.port, text)
            if any(fatal in text for fatal in _FATAL_REFUSALS):
                self.fatal = BrokerError(
                    f"broker {self.address.host}:{self.address.port} refused the connection: {text}",
                    hint="check the username and password (or --password-file)",
                )
            return
        self.connects += 1
        client.publish(f"{self.prefix}/status", b"online", qos=1, retain=True)
        client.subscribe(f"{self.prefix}/cmd", qos=1)
        with self._wake:
            # paho re-sends its own unacknowledged messages after a reconnect; everything newer is
            # still in the outbox past _last_sent.
            self.connected.set()
            self._wake.notify_all()

    def _disconnected(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); buffering results on disk until it is back", reason_code)

    def _published(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._wake:
            outbox_id = self._inflight.pop(mid, None)
            if outbox_id is None:
                # The PUBACK beat the sender's bookkeeping (it registers after publish returns).
                self._acked_early.add(mid)
            self._wake.notify_all()
        if outbox_id is not None:
            self.outbox.remove(outbox_id)

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self._on_command(message.payload)
        except Exception as exc:  # a bad command must never stop the network thread
            log.warning("ignored command %r: %s", message.payload[:200], exc)

    # -- the sender -------------------------------------------------------------------------

    def notify(self) -> None:
        """A new message is in the outbox."""
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                while not self._stopping.is_set() and (
                    not self.connected.is_set() or len(self._inflight) >= MAX_INFLIGHT
                ):
                    self._wake.wait(0.5)
                if self._stopping.is_set():
                    return
                room = MAX_INFLIGHT - len(self._inflight)
                last = self._last_sent
                generation = self._generation
            batch = self.outbox.after(last, room)
            if not batch:
                with self._wake:
                    if self._generation == generation:
                        self._wake.wait(0.5)
                continue
            for message in batch:
                if not self.connected.is_set():
                    break
                # Never call paho while holding our lock: paho calls _published holding its own.
                info = self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
                if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
                    log.warning("publish failed (%s); will retry", info.rc)
                    break
                acknowledged = message.qos == 0
                with self._wake:
                    if not acknowledged and info.mid in self._acked_early:
                        self._acked_early.discard(info.mid)
                        acknowledged = True
                    if not acknowledged:
                        self._inflight[info.mid] = message.id
                    self._last_sent = message.id
                if acknowledged:
                    self.outbox.remove(message.id)

    @property
    def inflight(self) -> int:
        return len(self._inflight)
