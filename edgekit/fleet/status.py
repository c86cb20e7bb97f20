"""``edgekit fleet status``: every device's state from the broker's retained topics alone.

Each daemon keeps three retained messages under ``edgekit/<id>/``: ``status`` (online, or
offline from its will or its clean stop), ``info`` (who it is and what it runs) and ``stats``
(its last figures, with the time they were sent). A subscription to the three gets every
device's at once, in the time the broker takes to send them: no device is asked anything, a
device that is off still shows, with when it was last heard of.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

TOPICS = ("status", "info", "stats")
DEPLOY_STATE = "deploy/state"
ROLLOUT_TOPIC = "edgekit/rollouts"  # edgekit.fleet.deploy keeps its records there
UNFINISHED = ("running", "interrupted")
# The broker sends retained messages right after the subscription is granted: once no retained
# one has come for this long, the table is complete.
SETTLE_S = 0.3


@dataclass
class Device:
    device_id: str
    status: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def row(self, now: float, deploy: dict[str, Any]) -> dict[str, Any]:
        model = self.info.get("model") or {}
        stats_ts = self.stats.get("ts")
        return {
            "device_id": self.device_id,
            "online": self.status == "online",
            "status": self.status or "unknown",
            "model": model.get("name"),
            "sha256": model.get("sha256"),
            "fps": self.stats.get("inference_fps"),
            "p99_ms": self.stats.get("latency_p99_ms"),
            "buffered": self.stats.get("buffered"),
            "last_seen_s": round(now - stats_ts, 1) if isinstance(stats_ts, (int, float)) else None,
            "edgekit": self.info.get("edgekit"),
            "profile": self.info.get("profile"),
            "free_disk_mb": self.info.get("free_disk_mb"),
            "deploy": deploy.get("state"),
            "deployment": deploy.get("deployment"),
        }


class FleetView:
    """What the broker holds for every device, kept current by an MQTT client's callbacks."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.deploy_states: dict[str, dict[str, Any]] = {}  # each device's last deployment state
        self.rollouts: dict[str, dict[str, Any]] = {}  # retained rollout records, by bundle sha256
        self.deployers: dict[str, dict[str, Any]] = {}  # whether each record's deploying client is there
        self._lock = threading.Lock()
        self.last_message = time.monotonic()
        self.subscribed = threading.Event()

    def on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        topics = [f"edgekit/+/{topic}" for topic in (*TOPICS, DEPLOY_STATE)] + [f"{ROLLOUT_TOPIC}/#"]
        client.subscribe([(topic, 1) for topic in topics])

    def on_subscribe(self, *args: Any) -> None:
        self.last_message = time.monotonic()
        self.subscribed.set()

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if getattr(message, "retain", False):
            # What the broker holds comes flagged retained; live figures from a busy fleet do not,
            # and must not keep the table from settling.
            self.last_message = time.monotonic()
        parts = message.topic.split("/")
        if message.topic.startswith(ROLLOUT_TOPIC + "/"):
            with self._lock:
                remember_rollout(self.rollouts, self.deployers, parts, message.payload)
            return
        if len(parts) == 4 and "/".join(parts[2:]) == DEPLOY_STATE:
            with self._lock:
                try:
                    state = json.loads(message.payload or b"null")
                except json.JSONDecodeError:
                    return
                if isinstance(state, dict):
                    self.deploy_states[parts[1]] = state
            return
        if len(parts) != 3 or parts[2] not in TOPICS:
            return
        device_id, topic = parts[1], parts[2]
        text = message.payload.decode("utf-8", errors="replace")
        with self._lock:
            if not text:  # a cleared retained topic
                if topic == "status":
                    self.devices.pop(device_id, None)
                return
            device = self.devices.setdefault(device_id, Device(device_id))
            if topic == "status":
                device.status = text.strip()
                return
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return  # not an edgekit daemon's: left out of its row
            if isinstance(value, dict):
                setattr(device, topic, value)

    def rows(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            return [self.devices[name].row(now, self.deploy_states.get(name, {})) for name in sorted(self.devices)]

    def unfinished_rollouts(self) -> list[dict[str, Any]]:
        """Rollouts left half-applied, each with every target's deployment state as devices report it."""
        with self._lock:
            found = unfinished_rollouts(self.rollouts, self.deployers)
            for record in found:
                states = []
                for device_id in record.get("targets") or []:
                    deploy = self.deploy_states.get(device_id, {})
                    mine = deploy.get("deployment") == record.get("deployment")
                    states.append({"device_id": device_id, "state": deploy.get("state") if mine else "not offered"})
                record["devices"] = states
        return found

    def wait_settled(self, timeout: float) -> bool:
        """Until the retained messages stop coming (True), or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        if not self.subscribed.wait(timeout):
            return False
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_message >= SETTLE_S:
                return True
            time.sleep(0.02)
        return False


def remember_rollout(
    rollouts: dict[str, dict[str, Any]], deployers: dict[str, dict[str, Any]], parts: list[str], payload: bytes
) -> None:
    """Fold one message under ``edgekit/rollouts/`` into the two maps (records, deployer presence)."""
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "deployer"):
        return
    try:
        document = json.loads(payload) if payload else None
    except json.JSONDecodeError:
        return
    into = rollouts if len(parts) == 3 else deployers
    if isinstance(document, dict):
        into[parts[2]] = document
    else:
        into.pop(parts[2], None)


def unfinished_rollouts(
    rollouts: dict[str, dict[str, Any]], deployers: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Records of rollouts that did not finish: interrupted, or running with their deployer gone."""
    found = []
    for bundle, record in rollouts.items():
        state = record.get("state")
        presence = deployers.get(bundle) or {}
        if state == "running" and presence.get("deployment") == record.get("deployment"):
            if presence.get("state") == "gone":
                found.append(dict(record, state="interrupted"))
            continue  # its deployer is still at work
        if state in UNFINISHED:
            found.append(dict(record))
    return found


def summary_line(rows: list[dict[str, Any]]) -> str:
    online = sum(1 for r in rows if r["online"])
    return f"{len(rows)} devices, {online} online"
