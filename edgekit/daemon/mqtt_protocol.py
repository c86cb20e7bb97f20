"""Which MQTT version to speak: 5 where the broker takes it, else 3.1.1.

Brokers answer an MQTT 5 CONNECT they do not speak in three ways, all seen here: a CONNACK
"Unsupported protocol version" (amqtt without a will), a dropped connection (amqtt 0.12 when
the CONNECT carries a will), or no CONNACK at all (RabbitMQ's MQTT plugin). edgekit's
clients treat each as "try 3.1.1", which every broker speaks, so the embedded broker, older
Mosquittos and clustered brokers all work without a setting.
"""

from __future__ import annotations

import enum
import socket
import threading
from collections.abc import Callable
from typing import Any

from edgekit.errors import BrokerError
from edgekit.foreign import PAHO_CONNECT, mapped

UNSUPPORTED_VERSION = 132  # the CONNACK reason code (MQTT 5; paho maps 3.1.1's code 1 to it)
# Refusals that retrying will not fix: the broker will not take these credentials.
FATAL_REFUSALS = ("Bad user name or password", "Not authorized", "Client identifier not valid", "Banned")


class MqttVersion(str, enum.Enum):
    AUTO = "auto"  # 5, falling back to 3.1.1 when the broker does not speak 5
    V5 = "5"
    V311 = "3.1.1"

    def first(self) -> int:
        """paho's protocol constant to try first."""
        import paho.mqtt.client as mqtt

        return mqtt.MQTTv311 if self is MqttVersion.V311 else mqtt.MQTTv5

    @property
    def may_fall_back(self) -> bool:
        return self is MqttVersion.AUTO


def protocol_name(protocol: int) -> str:
    import paho.mqtt.client as mqtt

    return "5" if protocol == mqtt.MQTTv5 else "3.1.1"


def refused_for_version(reason_code: Any) -> bool:
    """A CONNACK that says the broker does not speak the version asked for."""
    return getattr(reason_code, "value", None) == UNSUPPORTED_VERSION


def is_fatal_refusal(reason_code: Any) -> bool:
    text = str(reason_code)
    return any(fatal in text for fatal in FATAL_REFUSALS)


def new_client(protocol: int, client_id: str = "") -> Any:
    """A paho client with the callback API edgekit uses, clean session for either version."""
    import paho.mqtt.client as mqtt

    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTProtocolVersion(protocol),
        clean_session=None if protocol == mqtt.MQTTv5 else True,
    )


def tcp_reason(host: str, port: int, timeout: float = 2.0) -> str | None:
    """Why a TCP connection to the broker fails (``None`` when it opens): the line a user needs."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror or exc})"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


class _Attempt:
    """What one connection attempt came to: a CONNACK, a refusal, or silence."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reason: Any = None
        self.dropped = False


def connect_with_fallback(
    make_client: Callable[[int], Any],
    host: str,
    port: int,
    version: MqttVersion = MqttVersion.AUTO,
    *,
    keepalive: int = 15,
    timeout: float = 5.0,
) -> Any:
    """A connected client with its network loop running, speaking 5 or, if need be, 3.1.1.

    ``make_client(protocol)`` builds the client with its own callbacks; its ``on_connect`` still
    runs on every (re)connect, so subscriptions made there are renewed after a broker restart.
    """
    import paho.mqtt.client as mqtt

    protocols = [version.first()] + ([mqtt.MQTTv311] if version.may_fall_back else [])
    last = ""
    for protocol in protocols:
        client = make_client(protocol)
        attempt = _Attempt()
        user_on_connect = client.on_connect
        user_on_disconnect = client.on_disconnect

        def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any, attempt: _Attempt = attempt,
                       user: Any = user_on_connect) -> None:  # fmt: skip
            if not attempt.done.is_set():
                attempt.reason = reason
                attempt.done.set()
            if user is not None and not reason.is_failure:
                user(c, u, flags, reason, props)

        def on_disconnect(c: Any, u: Any, flags: Any, reason: Any, props: Any, attempt: _Attempt = attempt,
                          user: Any = user_on_disconnect) -> None:  # fmt: skip
            if not attempt.done.is_set():
                attempt.dropped = True
                attempt.done.set()
            if user is not None:
                user(c, u, flags, reason, props)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        unreachable = f"cannot reach the broker at {host}:{port} ({{reason}})"
        with mapped(PAHO_CONNECT, unreachable, hint="is it running? `edgekit broker` starts one"):
            client.connect(host, port, keepalive=keepalive)
        client.loop_start()
        answered = attempt.done.wait(timeout)
        reason = attempt.reason
        if answered and reason is not None and not reason.is_failure:
            return client
        client.loop_stop()
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - a socket that never connected; nothing to release
            pass
        if answered and reason is not None and not refused_for_version(reason):
            raise BrokerError(f"broker {host}:{port} refused the connection: {reason}")
        last = (
            "it does not speak MQTT " + protocol_name(protocol)
            if answered and reason is not None
            else ("it closed the connection" if answered else f"no answer to CONNECT within {timeout:g} s")
        )
    raise BrokerError(f"broker {host}:{port} did not take the connection: {last}")
