"""An embedded MQTT broker (amqtt) for machines with no Mosquitto: `edgekit broker`, the demo.

It is for trying edgekit, not for production: Mosquitto is what the tests and devices use.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from edgekit.errors import BrokerError, require_extra


def _config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 100}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }


class EmbeddedBroker:
    """Runs amqtt on its own event loop in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        require_extra("amqtt", "all")
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="edgekit-broker", daemon=True)
        self._broker: Any = None

    def start(self) -> EmbeddedBroker:
        from amqtt.broker import Broker

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        self._thread.start()

        async def start() -> Any:
            broker = Broker(_config(self.host, self.port))
            await broker.start()
            return broker

        try:
            self._broker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=15)
        except Exception as exc:
            raise BrokerError(f"cannot start the embedded broker on {self.host}:{self.port}: {exc}") from exc
        return self

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(host: str, port: int) -> None:
    import time

    with EmbeddedBroker(host, port):
        print(f"edgekit broker: listening on mqtt://{host}:{port} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
