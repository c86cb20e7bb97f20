"""The daemon's MQTT side, per the contract in DESIGN.md.

- ``edgekit/<id>/status``: retained ``offline`` set as the will before connecting, retained
  ``online`` on every connect, retained ``offline`` on a clean stop.
- ``edgekit/<id>/info`` (and any other entry of ``retained``): retained, on every connect.
- Subscriptions (``cmd``) are made in ``on_connect``, so a broker restart renews them.
- A refused connection is reported as refused (``reason_code.is_failure``), never taken for
  connected; bad credentials stop the daemon with one clear line.
- A broker that does not speak MQTT 5 (it refuses the version, drops the CONNECT or never
  answers it) is spoken to in 3.1.1 from then on (``mqtt_version: auto``, the default).
- The first connection that fails is one WARNING naming the broker and why; results are kept
  on disk meanwhile (``--require-broker`` makes it an error instead).
- Results go through the OfflineBuffer: published in order by one thread, removed on PUBACK.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from edgekit.daemon.broker_address import BrokerAddress, BrokerSettings
from edgekit.daemon.mqtt_protocol import (
    is_fatal_refusal,
    new_client,
    protocol_name,
    refused_for_version,
    tcp_reason,
)
from edgekit.daemon.outbox import OfflineBuffer
from edgekit.errors import BrokerError

log = logging.getLogger("edgekit.daemon.mqtt")

MAX_INFLIGHT = 64
# An MQTT 5 CONNECT left unanswered this long is taken as "this broker does not speak 5": amqtt
# 0.12 waits forever for a will it misreads, RabbitMQ's MQTT plugin never answers.
CONNACK_TIMEOUT_S = 3.0


class DaemonLink:
    """One MQTT connection for a daemon: status, results through the outbox, commands in."""

    def __init__(
        self,
        settings: BrokerSettings,
        device_id: str,
        outbox: OfflineBuffer,
        on_command: Callable[[bytes], None],
        *,
        warn_first_failure: bool = True,
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
        # Retained topics under the prefix published on every connect (the device's ``info``).
        self.retained: dict[str, bytes] = {}  # full topic → payload, published again on every connect
        # Topic filters beyond ``cmd`` (deployments), renewed on every connect, with their handlers.
        self._subscriptions: dict[str, Callable[[str, bytes], None]] = {}

        self.settings = settings
        self.version = settings.version
        self.protocol = settings.version.first()
        self._downgrade = False  # set on paho's thread, acted on by the sender thread
        self._answered = False  # a CONNACK (of any kind) came for the current client
        self._awaiting_connack_since: float | None = None
        self.first_failure: str | None = None  # why the first connection failed, once known
        self._first_outcome = threading.Event()
        self._warn_first_failure = warn_first_failure  # off when the caller makes it an error instead
        self.client = self._build_client(self.protocol)
        self._sender = threading.Thread(target=self._send_loop, name="edgekit-mqtt-send", daemon=True)

    def _build_client(self, protocol: int) -> Any:
        settings = self.settings
        client = new_client(protocol, settings.client_id or f"edgekit-{self.prefix.split('/', 1)[1]}")
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
        client.on_connect_fail = self._connect_failed
        client.on_socket_open = self._socket_opened
        client.on_disconnect = self._disconnected
        client.on_publish = self._published
        client.on_message = self._message
        return client

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background: a broker that is down now is retried with backoff."""
        self.client.connect_async(self.address.host, self.address.port, keepalive=self._keepalive)
        self.client.loop_start()
        self._sender.start()

    def wait_first_connection(self, timeout: float) -> str | None:
        """Wait until the first connection is made (``None``) or has failed (why, in words)."""
        if self.connected.wait(timeout):
            return None
        self._first_outcome.wait(0 if self._first_outcome.is_set() else 0.1)
        return self.first_failure or f"no connection within {timeout:g} s"

    def _first_failed(self, reason: str) -> None:
        """One WARNING for a first connection that failed; later outages say so on their own."""
        if self._first_outcome.is_set():
            return
        self.first_failure = reason
        self._first_outcome.set()
        if not self._warn_first_failure:
            return
        log.warning(
            "cannot connect to the broker at %s: %s; results are kept on disk and sent when it answers",
            self.settings.url_shown,
            reason,
        )

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
        self._sender.join(timeout=2.0)  # it may be switching clients: let it finish first
        if self.connected.is_set():
            info = self.client.publish(f"{self.prefix}/status", b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.2, deadline - time.monotonic() + 1.0))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (paho's network thread) -----------------------------------------------

    def _connected(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if client is not self.client:
            return  # a client being replaced
        self._answered = True
        self._awaiting_connack_since = None
        if reason_code.is_failure:
            if refused_for_version(reason_code) and self._may_downgrade():
                self._request_downgrade("it refused MQTT 5")
                return
            self.refusals += 1
            text = str(reason_code)
            log.warning("broker %s:%s refused the connection: %s", self.address.host, self.address.port, text)
            self._first_failed(f"refused ({text})")
            if is_fatal_refusal(reason_code):
                self.fatal = BrokerError(
                    f"broker {self.address.host}:{self.address.port} refused the connection: {text}",
                    hint="check the username and password (or --password-file)",
                )
            return
        self.connects += 1
        self._first_outcome.set()
        client.publish(f"{self.prefix}/status", b"online", qos=1, retain=True)
        for full_topic, payload in self.retained.items():
            client.publish(full_topic, payload, qos=1, retain=True)
        client.subscribe(f"{self.prefix}/cmd", qos=1)
        for topic in list(self._subscriptions):
            client.subscribe(topic, qos=1)
        with self._wake:
            # paho re-sends its own unacknowledged messages after a reconnect; everything newer is
            # still in the outbox past _last_sent.
            self.connected.set()
            self._wake.notify_all()

    def _socket_opened(self, client: Any, userdata: Any, sock: Any) -> None:
        if client is self.client:
            self._awaiting_connack_since = time.monotonic()

    def _connack_overdue(self) -> bool:
        since = self._awaiting_connack_since
        return since is not None and time.monotonic() - since > CONNACK_TIMEOUT_S and self._may_downgrade()

    def _connect_failed(self, client: Any, userdata: Any) -> None:
        # paho says only that the attempt failed; the socket error is what a user can act on.
        if client is self.client and not self._first_outcome.is_set():
            reason = tcp_reason(self.address.host, self.address.port)
            if reason is None:
                reason = "the TLS handshake failed" if self.address.tls else "the connection failed"
            self._first_failed(reason)

    def _disconnected(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if client is not self.client:
            return
        was_connected = self.connected.is_set()
        self.connected.clear()
        self._awaiting_connack_since = None
        if self._stopping.is_set():
            return
        if not was_connected and not self._answered and self._may_downgrade():
            # Closed (or timed out) before any CONNACK: a broker that does not speak MQTT 5.
            self._request_downgrade("it closed an MQTT 5 connection unanswered")
            return
        if was_connected:
            log.warning("lost the broker (%s); buffering results on disk until it is back", reason_code)
        else:
            self._first_failed(f"the connection closed before the broker answered ({reason_code})")

    def _may_downgrade(self) -> bool:
        # A broker that once accepted MQTT 5 speaks it: a later connection closed before its
        # CONNACK is the network (a cut, a restart behind a proxy), not the protocol.
        return self.version.may_fall_back and self.protocol == self._mqtt.MQTTv5 and self.connects == 0

    def _request_downgrade(self, why: str) -> None:
        log.info("broker %s: %s; speaking MQTT 3.1.1 to it", self.settings.url_shown, why)
        with self._wake:
            self._downgrade = True
            self._wake.notify_all()

    def _switch_to_311(self) -> None:
        """Replace the MQTT 5 client by a 3.1.1 one (on the sender thread, never paho's)."""
        with self._wake:
            old = self.client
            self._downgrade = False
            self._answered = False
            self._awaiting_connack_since = None
            # The old client's unacknowledged messages are still in the outbox: send them again.
            self._inflight.clear()
            self._acked_early.clear()
            self._last_sent = 0
            self.protocol = self._mqtt.MQTTv311
            self.client = self._build_client(self.protocol)  # the old one's callbacks now return early
        old.loop_stop()
        try:
            old.disconnect()
        except Exception:  # noqa: BLE001 - a client that never connected has nothing to close
            pass
        self.client.connect_async(self.address.host, self.address.port, keepalive=self._keepalive)
        self.client.loop_start()

    @property
    def protocol_version(self) -> str:
        return protocol_name(self.protocol)

    def _published(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if client is not self.client:
            return
        with self._wake:
            outbox_id = self._inflight.pop(mid, None)
            if outbox_id is None:
                # The PUBACK beat the sender's bookkeeping (it registers after publish returns).
                self._acked_early.add(mid)
            self._wake.notify_all()
        if outbox_id is not None:
            self.outbox.remove(outbox_id)

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic != f"{self.prefix}/cmd":
            for topic, handler in list(self._subscriptions.items()):
                if self._mqtt.topic_matches_sub(topic, message.topic):
                    handler(message.topic, message.payload)
            return
        try:
            self._on_command(message.payload)
        except Exception as exc:  # a bad command must never stop the network thread
            log.warning("ignored command %r: %s", message.payload[:200], exc)

    # -- beyond results: deployments --------------------------------------------------------

    def add_subscription(self, topic: str, handler: Callable[[str, bytes], None]) -> None:
        """Subscribe to ``topic`` now if connected, and on every connect until removed."""
        self._subscriptions[topic] = handler
        if self.connected.is_set():
            self.client.subscribe(topic, qos=1)

    def remove_subscription(self, topic: str) -> None:
        if self._subscriptions.pop(topic, None) is not None and self.connected.is_set():
            self.client.unsubscribe(topic)

    def publish(self, topic: str, payload: bytes) -> None:
        """A message that only matters now (not kept for later): sent if connected."""
        if self.connected.is_set():
            self.client.publish(topic, payload, qos=1)

    def publish_retained(self, name: str, payload: bytes, *, absolute: bool = False) -> None:
        """``<prefix>/<name>`` (or the topic ``name`` itself, ``absolute``), retained: sent now if
        connected, and again on every connect."""
        full_topic = name if absolute else f"{self.prefix}/{name}"
        self.retained[full_topic] = payload
        if self.connected.is_set():
            self.client.publish(full_topic, payload, qos=1, retain=True)

    # -- the sender -------------------------------------------------------------------------

    def notify(self) -> None:
        """A new message is in the outbox."""
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                while (
                    not self._stopping.is_set()
                    and not self._downgrade
                    and (not self.connected.is_set() or len(self._inflight) >= MAX_INFLIGHT)
                ):
                    if self._connack_overdue():
                        self._downgrade = True
                        log.info(
                            "broker %s: no answer to an MQTT 5 CONNECT in %g s; speaking MQTT 3.1.1 to it",
                            self.settings.url_shown,
                            CONNACK_TIMEOUT_S,
                        )
                        break
                    self._wake.wait(0.5)
                if self._stopping.is_set():
                    return
                downgrade = self._downgrade
            if downgrade:
                self._switch_to_311()
                continue
            with self._wake:
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
