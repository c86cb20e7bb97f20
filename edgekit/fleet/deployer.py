"""The deploying machine's MQTT client: it watches the fleet, puts a bundle's chunks on the
broker, signs and sends offers, answers chunk requests and follows each device's state.

``edgekit.fleet.deploy`` (rollouts, rollbacks) and ``edgekit.fleet.bench`` drive it; the
device's side is ``edgekit.daemon.updates``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.daemon.bundle import Bundle, canonical, chunk_hashes, read_chunk
from edgekit.daemon.signing import Signer
from edgekit.errors import DeploymentError
from edgekit.fleet.status import ROLLOUT_TOPIC, FleetView

CHUNK_BYTES = 256 * 1024
FINAL = ("active", "rolled back", "benched")
PUBLISH_TIMEOUT_S = 60.0

Progress = Callable[[str], None]


@dataclass
class Target:
    device_id: str
    state: str = "waiting"
    detail: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)  # stats before the offer

    @property
    def done(self) -> bool:
        return self.state in FINAL or self.failed

    @property
    def failed(self) -> bool:
        return self.state.startswith(("failed", "superseded", "timed out", "slower"))


class Deployer:
    """One MQTT client that watches the fleet, answers chunk requests and follows device states."""

    def __init__(self, client: Any, view: FleetView) -> None:
        self.client = client
        self.view = view
        self.states: dict[str, dict[str, Any]] = {}
        self.bundle: Bundle | None = None
        self.published_bytes = 0
        self.chunk_bytes = CHUNK_BYTES
        self._issued = 0.0
        self.refused: dict[int, str] = {}  # message id → the broker's reason (MQTT 5 acknowledgements)
        self._lock = threading.Lock()

    # paho callbacks -------------------------------------------------------------------------

    def on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self.refused[mid] = str(reason_code)

    def on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.view.on_connect(client, userdata, flags, reason_code, properties)
        client.subscribe("edgekit/+/deploy/need", 1)  # the view subscribes to states and rollouts

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) == 4 and parts[2] == "deploy":
            try:
                document = json.loads(message.payload or b"null")
            except json.JSONDecodeError:
                return
            if not isinstance(document, dict):
                return
            if parts[3] == "state":
                with self._lock:
                    self.states[parts[1]] = document
            elif parts[3] == "need":
                self._resend(document)
                return
        self.view.on_message(client, userdata, message)

    def _resend(self, request: dict[str, Any]) -> None:
        """A device found a chunk corrupt: send it again (retained, so it replaces the bad one)."""
        bundle = self.bundle
        if bundle is None or request.get("bundle") != bundle.sha256:
            return
        for index in request.get("chunks") or []:
            if isinstance(index, int) and 0 <= index * self.chunk_bytes < bundle.size:
                data = read_chunk(bundle.path, index, self.chunk_bytes)
                self.client.publish(f"edgekit/artifacts/{bundle.sha256}/{index}", data, qos=1, retain=True)
                self.published_bytes += len(data)

    # publishing -----------------------------------------------------------------------------

    def upload(self, bundle: Bundle) -> list[str]:
        """The bundle's chunks, retained on the broker; their sha256 in order."""
        self.bundle = bundle
        hashes = chunk_hashes(bundle.path, self.chunk_bytes)
        pending = []
        for index in range(len(hashes)):
            data = read_chunk(bundle.path, index, self.chunk_bytes)
            pending.append(self.client.publish(f"edgekit/artifacts/{bundle.sha256}/{index}", data, qos=1, retain=True))
            self.published_bytes += len(data)
        for info in pending:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
            if not info.is_published():
                raise DeploymentError("the broker did not take the model's chunks in time", hint="check the broker")
            if info.mid in self.refused:
                raise DeploymentError(
                    f"the broker refused the model's chunks ({self.refused[info.mid]})",
                    hint="deploy as a broker user allowed to write edgekit/# (see examples/mosquitto-acl.conf)",
                )
        return hashes

    def clear_upload(self, bundle: Bundle, chunks: int) -> None:
        for index in range(chunks):
            self.client.publish(f"edgekit/artifacts/{bundle.sha256}/{index}", b"", qos=1, retain=True)

    def offer(self, device_id: str, document: dict[str, Any], signer: Signer) -> None:
        # Devices refuse an offer issued before the last one they accepted: strictly increasing.
        self._issued = max(time.time(), self._issued + 1e-3)
        signed = dict(document, device=device_id, key_id=signer.key_id, issued=self._issued)
        signed["signature"] = signer.sign(canonical(signed))
        payload = json.dumps(signed).encode()
        self.client.publish(f"edgekit/{device_id}/deploy", payload, qos=1, retain=True).wait_for_publish(
            PUBLISH_TIMEOUT_S
        )
        self.published_bytes += len(payload)

    def record(self, record: dict[str, Any]) -> None:
        """The rollout's retained record (see the module's docstring)."""
        record = dict(record, updated=round(time.time(), 3))
        topic = f"{ROLLOUT_TOPIC}/{record['bundle']}"
        self.client.publish(topic, json.dumps(record).encode(), qos=1, retain=True).wait_for_publish(PUBLISH_TIMEOUT_S)

    def present(self, bundle_sha256: str, deployment: str, here: bool) -> None:
        """Say this client is running the rollout (retained), or clear that at a clean end."""
        payload = json.dumps({"deployment": deployment, "state": "here"}).encode() if here else b""
        topic = f"{ROLLOUT_TOPIC}/{bundle_sha256}/deployer"
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(PUBLISH_TIMEOUT_S)

    def unfinished(self, bundle_sha256: str) -> dict[str, Any] | None:
        """An earlier rollout of this bundle that never finished, if the broker holds one."""
        return next((r for r in self.view.unfinished_rollouts() if r.get("bundle") == bundle_sha256), None)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def state_of(self, device_id: str, deployment: str) -> str:
        with self._lock:
            document = self.states.get(device_id) or {}
        if document.get("deployment") == deployment:
            return str(document.get("state", "waiting"))
        if document.get("superseded") == deployment:
            return f"superseded by {document.get('deployment')}"
        return "waiting"


def open_deployer(
    broker: str,
    login: tuple[str, str | None] | None = None,
    will: tuple[str, bytes] | None = None,
    deployer_class: type[Deployer] | None = None,
) -> Deployer:
    """A Deployer connected to ``broker`` (MQTT 5, or 3.1.1 where it must), once the broker has
    handed over what it retains of the fleet; ``will``: the (topic, payload) the broker publishes,
    retained, if this client vanishes. ``close()`` it when done."""
    from edgekit.daemon.broker_address import BrokerAddress
    from edgekit.daemon.mqtt_protocol import connect_with_fallback, new_client

    address = BrokerAddress.parse(broker)
    made: list[Deployer] = []

    def make_client(protocol: int) -> Any:
        client = new_client(protocol)
        if login is not None:
            client.username_pw_set(*login)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        deployer = (deployer_class or Deployer)(client, FleetView())
        made.append(deployer)
        client.on_connect = deployer.on_connect
        client.on_subscribe = deployer.view.on_subscribe
        client.on_message = deployer.on_message
        client.on_publish = deployer.on_publish
        return client

    client = connect_with_fallback(make_client, address.host, address.port)
    deployer = next(d for d in made if d.client is client)
    deployer.view.wait_settled(5.0)
    return deployer


def deployer_will(bundle_sha256: str, deployment: str) -> tuple[str, bytes]:
    """The topic and payload the deploying client leaves as its will: gone, if it vanishes."""
    return f"{ROLLOUT_TOPIC}/{bundle_sha256}/deployer", json.dumps({"deployment": deployment, "state": "gone"}).encode()


def wait_for(deployer: Deployer, targets: list[Target], deployment: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for target in targets:
            if not target.done:
                target.state = deployer.state_of(target.device_id, deployment)
                with deployer._lock:
                    target.detail = dict(deployer.states.get(target.device_id) or {})
        if all(t.done for t in targets):
            return
        time.sleep(0.1)
    for target in targets:
        if not target.done:
            target.state = f"timed out ({target.state})"


def offer_document(kind: str, deployment: str, bundle: Bundle, hashes: list[str], chunk_bytes: int) -> dict[str, Any]:
    """What an offer names (before it is signed): the artifact, and the bundle chunk by chunk."""
    return {
        "kind": kind,
        "deployment": deployment,
        "artifact": {"name": bundle.artifact, "sha256": bundle.artifact_sha256},
        "bundle": {"sha256": bundle.sha256, "size": bundle.size, "chunk_bytes": chunk_bytes, "chunk_sha256": hashes},
    }


def new_deployment_id() -> str:
    return uuid.uuid4().hex[:12]
