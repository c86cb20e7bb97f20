"""``edgekit deploy`` and ``edgekit rollback``: a model to many devices over their own broker.

The bundle's chunks go to the broker once, retained under ``edgekit/artifacts/<sha256>/``; each
target gets a signed offer, retained on ``edgekit/<id>/deploy``, and reports on
``edgekit/<id>/deploy/state`` (``edgekit.daemon.updates`` is the device's side). Devices fetch the
chunks from the broker, not from this machine, so a device cut off mid-transfer resumes from the
broker, and this command may go away: what was offered goes on, what was not is not offered.

A rollout goes in waves: ``--canary N`` devices first; the rest only once every canary is
``active`` and, over ``--settle`` seconds, kept its results rate and p99 latency within
``--max-slowdown`` of before (a canary that slowed down is rolled back). The ``--max-failures``-th
failure (a count or a share of the targets) stops it: devices not yet offered the model never
see it.

A rollout keeps a retained record on ``edgekit/rollouts/<bundle sha256>``: ``running`` while it
goes, ``complete``, ``aborted`` or ``incomplete`` at its end, ``interrupted`` on Ctrl-C. Beside
it, ``…/deployer`` says ``here`` while the deploying client is connected; its will turns that
into ``gone``, so a record still ``running`` with its deployer gone is a rollout the deploying
machine left half-applied, and ``edgekit fleet status`` shows it as interrupted. Running the same deploy again
resumes it: devices that already run the bundle answer ``active`` at once.
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
from edgekit.errors import ConfigError, DeploymentError
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


def parse_max_failures(text: str, targets: int) -> int:
    """``3`` or ``10%`` (of the targets, rounded down): how many failures a rollout absorbs."""
    value = text.strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            return int(targets * share / 100)
        count = int(value)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise ConfigError(f"--max-failures must be a count or a percentage, got {text!r}") from None


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

    def state_of(self, device_id: str, deployment: str) -> str:
        with self._lock:
            document = self.states.get(device_id) or {}
        if document.get("deployment") == deployment:
            return str(document.get("state", "waiting"))
        if document.get("superseded") == deployment:
            return f"superseded by {document.get('deployment')}"
        return "waiting"


def deployer_will(bundle_sha256: str, deployment: str) -> tuple[str, bytes]:
    """The topic and payload the deploying client leaves as its will: gone, if it vanishes."""
    return f"{ROLLOUT_TOPIC}/{bundle_sha256}/deployer", json.dumps({"deployment": deployment, "state": "gone"}).encode()


def _stats(view: FleetView, device_id: str) -> dict[str, Any]:
    device = view.devices.get(device_id)
    return dict(device.stats) if device is not None else {}


def _slower(before: dict[str, Any], after: dict[str, Any], bound: float) -> str | None:
    """Why ``after`` is worse than ``before`` by more than ``bound``, or None."""
    fps_before, fps_after = before.get("inference_fps"), after.get("inference_fps")
    p99_before, p99_after = before.get("latency_p99_ms"), after.get("latency_p99_ms")
    if isinstance(fps_before, (int, float)) and isinstance(fps_after, (int, float)) and fps_before > 0:
        if fps_after < fps_before * (1 - bound):
            return f"slower: {fps_after:g} results/s after, {fps_before:g} before"
    if isinstance(p99_before, (int, float)) and isinstance(p99_after, (int, float)) and p99_before > 0:
        if p99_after > p99_before * (1 + bound):
            return f"slower: p99 {p99_after:g} ms after, {p99_before:g} ms before"
    return None


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


def rollout_record(deployment: str, bundle: Bundle, device_ids: list[str], canary: int, state: str) -> dict[str, Any]:
    """What the retained rollout record holds; the CLI also sets it, ``interrupted``, as its will."""
    return {
        "deployment": deployment,
        "artifact": bundle.artifact,
        "sha256": bundle.artifact_sha256,
        "bundle": bundle.sha256,
        "targets": device_ids,
        "canary": canary,
        "state": state,
        "started": round(time.time(), 3),
    }


def rollout(
    deployer: Deployer,
    bundle: Bundle,
    device_ids: list[str],
    signer: Signer,
    *,
    canary: int,
    max_failures: int,
    settle_s: float,
    max_slowdown: float,
    timeout_s: float,
    progress: Progress,
    deployment: str | None = None,
) -> dict[str, Any]:
    """Offer ``bundle`` to ``device_ids`` in waves; what each ended as, and the rollout's figures."""
    deployment = deployment or new_deployment_id()
    earlier = deployer.unfinished(bundle.sha256)
    if earlier is not None:
        progress(
            f"resuming rollout {earlier.get('deployment')} of {bundle.artifact} ({earlier.get('state')}): "
            "devices that already run it count as done"
        )
    record = rollout_record(deployment, bundle, device_ids, canary, "running")
    deployer.present(bundle.sha256, deployment, here=True)
    deployer.record(record)
    try:
        result = _waves(
            deployer, bundle, device_ids, signer, deployment, canary=canary, max_failures=max_failures,
            settle_s=settle_s, max_slowdown=max_slowdown, timeout_s=timeout_s, progress=progress,
        )  # fmt: skip
    except BaseException:
        deployer.record(dict(record, state="interrupted"))
        deployer.present(bundle.sha256, deployment, here=False)
        raise
    final = "complete" if result["complete"] else "aborted" if result["aborted"] else "incomplete"
    deployer.record(dict(record, state=final, devices=result["devices"]))
    deployer.present(bundle.sha256, deployment, here=False)
    return result


def _waves(
    deployer: Deployer,
    bundle: Bundle,
    device_ids: list[str],
    signer: Signer,
    deployment: str,
    *,
    canary: int,
    max_failures: int,
    settle_s: float,
    max_slowdown: float,
    timeout_s: float,
    progress: Progress,
) -> dict[str, Any]:
    started = time.monotonic()
    hashes = deployer.upload(bundle)
    progress(f"{bundle.artifact}: {bundle.size / 1e6:.2f} MB in {len(hashes)} chunks on the broker")
    document = offer_document("deploy", deployment, bundle, hashes, deployer.chunk_bytes)
    targets = [Target(d) for d in device_ids]
    waves = [targets[:canary], targets[canary:]] if 0 < canary < len(targets) else [targets]
    aborted: str | None = None
    for number, wave in enumerate(waves):
        for target in wave:
            target.before = _stats(deployer.view, target.device_id)
            deployer.offer(target.device_id, document, signer)
            target.state = "offered"
        progress(
            f"offered to {', '.join(t.device_id for t in wave)}"
            if len(wave) <= 5
            else f"offered to {len(wave)} devices"
        )
        wait_for(deployer, wave, deployment, timeout_s)
        if number == 0 and len(waves) > 1 and settle_s > 0 and all(t.state == "active" for t in wave):
            progress(f"canaries active; watching them for {settle_s:g} s")
            time.sleep(settle_s)
            for target in wave:
                why = _slower(target.before, _stats(deployer.view, target.device_id), max_slowdown)
                if why is not None:
                    target.state = why
                    rollback_document = {"kind": "rollback", "deployment": new_deployment_id()}
                    deployer.offer(target.device_id, rollback_document, signer)
        failures = sum(t.failed for t in targets)
        if number == 0 and len(waves) > 1 and any(t.state != "active" for t in wave):
            stuck = next(t for t in wave if t.state != "active")
            aborted = f"canary {stuck.device_id}: {stuck.state}; the rest were not offered it"
            break
        if failures and failures >= max_failures:
            aborted = f"{failures} failed (--max-failures {max_failures}); the rest were not offered it"
            break
    complete = all(t.done for t in targets) and aborted is None
    if all(t.done for t in targets if t.state != "waiting"):
        deployer.clear_upload(bundle, len(hashes))
    return {
        "deployment": deployment,
        "artifact": bundle.artifact,
        "sha256": bundle.artifact_sha256,
        "bundle_bytes": bundle.size,
        "published_bytes": deployer.published_bytes,
        "seconds": round(time.monotonic() - started, 2),
        "complete": complete,
        "aborted": aborted,
        "devices": [{"device_id": t.device_id, "state": t.state} for t in targets],
    }


def roll_back(deployer: Deployer, device_ids: list[str], signer: Signer, *, timeout_s: float) -> dict[str, Any]:
    deployment = new_deployment_id()
    targets = [Target(d) for d in device_ids]
    for target in targets:
        deployer.offer(target.device_id, {"kind": "rollback", "deployment": deployment}, signer)
    wait_for(deployer, targets, deployment, timeout_s)
    return {
        "deployment": deployment,
        "complete": all(t.state == "rolled back" for t in targets),
        "devices": [{"device_id": t.device_id, "state": t.state} for t in targets],
    }
