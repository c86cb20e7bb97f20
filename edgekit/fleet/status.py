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
# The broker sends retained messages right after the subscription is granted: once none has
# come for this long, the table is complete.
SETTLE_S = 0.3


@dataclass
class Device:
    device_id: str
    status: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    def row(self, now: float) -> dict[str, Any]:
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
        }


class FleetView:
    """What the broker holds for every device, kept current by an MQTT client's callbacks."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self._lock = threading.Lock()
        self.last_message = time.monotonic()
        self.subscribed = threading.Event()

    def on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        client.subscribe([(f"edgekit/+/{topic}", 1) for topic in TOPICS])

    def on_subscribe(self, *args: Any) -> None:
        self.last_message = time.monotonic()
        self.subscribed.set()

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) != 3 or parts[2] not in TOPICS:
            return
        device_id, topic = parts[1], parts[2]
        text = message.payload.decode("utf-8", errors="replace")
        with self._lock:
            self.last_message = time.monotonic()
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
            return [self.devices[name].row(now) for name in sorted(self.devices)]

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


def summary_line(rows: list[dict[str, Any]]) -> str:
    online = sum(1 for r in rows if r["online"])
    return f"{len(rows)} devices, {online} online"
