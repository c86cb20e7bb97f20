"""An embedded MQTT broker (amqtt) for machines with no Mosquitto: `edgekit broker`, the demo.

It is for trying edgekit, not for production: Mosquitto is what the tests and devices use.
amqtt speaks MQTT 3.1.1 (it refuses or drops an MQTT 5 CONNECT), which edgekit's clients fall
back to by themselves (``edgekit.daemon.mqtt_protocol``). Its log lines (notices about its own
configuration, every refused CONNECT) stay off the terminal unless ``--debug``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

from edgekit.errors import BrokerError, require_extra
from edgekit.foreign import AMQTT_START, mapped
from edgekit.quiet import debugging

# The loggers amqtt and the state machine library under it write to.
_BROKER_LOGGERS = ("amqtt", "transitions")


def _config(host: str, port: int) -> dict[str, Any]:
    # amqtt 0.12's plugin table: anonymous clients only (no $SYS topics, no packet logging).
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 100}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _quiet_broker_logs() -> None:
    if debugging():
        return
    for name in _BROKER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [logging.NullHandler()]
        logger.propagate = False


def check_port_free(host: str, port: int) -> None:
    """A busy port is one line before the broker starts (amqtt would print its traceback)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            busy = exc.errno in (98, 48, 10048)  # EADDRINUSE on Linux, macOS, Windows
            reason = "is in use (a broker already running?)" if busy else f"cannot be bound ({exc.strerror or exc})"
            raise BrokerError(
                f"port {port} on {host} {reason}",
                hint="choose another with --port" if busy else "check --host",
            ) from exc


class EmbeddedBroker:
    """Runs amqtt on its own event loop in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        require_extra("amqtt", "all")
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="edgekit-broker", daemon=True)
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        check_port_free(self.host, self.port)
        _quiet_broker_logs()
        from amqtt.broker import Broker

        self._thread.start()

        async def start() -> Any:
            broker = Broker(_config(self.host, self.port))
            await broker.start()
            return broker

        try:
            with mapped(AMQTT_START, f"cannot start the embedded broker on {self.host}:{self.port}"):
                self._broker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=15)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise
        return self

    def stop(self) -> None:
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=10)
            except Exception:  # noqa: BLE001 - shutting down: clients it could not say goodbye to
                pass
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(host: str, port: int) -> None:
    with EmbeddedBroker(host, port):
        print(f"edgekit broker: listening on mqtt://{host}:{port} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
