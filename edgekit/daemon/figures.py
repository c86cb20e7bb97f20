"""A daemon's figures: the ``stats`` it publishes (and Prometheus reads), and the summary it ends with."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def daemon_stats(daemon: Any, capture: Any, mailbox: Any, outbox: Any, link: Any) -> dict[str, Any]:
    """``daemon``: the Daemon (its counters and recent result times and latencies)."""
    now = time.monotonic()
    window = min(5.0, max(now - daemon.started, 1e-3))
    recent = [t for t in list(daemon._result_times) if now - t <= window]
    if len(recent) == daemon._result_times.maxlen:  # faster than the deque holds over the window
        window = max(now - recent[0], 1e-3)
    # list() first: a scrape reads these from the metrics thread while the loop appends.
    latencies = np.asarray(list(daemon._latencies) or [0.0])
    return {
        "device_id": daemon.config.device_id,
        "run_id": daemon.run_id,
        "ts": round(time.time(), 3),
        "uptime_s": round(now - daemon.started, 1),
        "camera_fps": capture.camera_fps(),
        "inference_fps": round(len(recent) / window, 2),
        "results": daemon.results,
        "skipped_frames": mailbox.skipped,
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "queue_depth": mailbox.depth,
        "buffered": len(outbox),
        "buffered_bytes": outbox.size_bytes,
        "inflight": link.inflight,
        "dropped_overflow": outbox.dropped,
        "dropped_disk_full": outbox.refused,
        "source_reconnects": capture.reconnects,
        "source_gap_s": capture.gap_s(),
        "longest_source_gap_s": round(capture.longest_gap_s, 2),
        "broker_connects": link.connects,
        "broker_refusals": link.refusals,
        "connected": link.connected.is_set(),
        "mqtt_version": link.protocol_version,
        "paused": daemon.paused,
        "threshold": daemon.threshold,
    }


def run_summary(daemon: Any, capture: Any, mailbox: Any, outbox: Any, link: Any) -> dict[str, Any]:
    """The stats, with what the whole run read and how long each stage took per result."""
    per_result = max(daemon.results, 1)
    stages = {"capture": round(capture.read_seconds / max(capture.frames_read, 1) * 1000, 4)}
    stages.update({k: round(v / per_result * 1000, 4) for k, v in daemon._stage_seconds.items()})
    elapsed = (daemon._result_times[-1] - daemon._result_times[0]) if len(daemon._result_times) > 1 else 0.0
    return {
        **daemon_stats(daemon, capture, mailbox, outbox, link),
        "frames_read": capture.frames_read,
        "stage_ms": stages,  # mean milliseconds per frame (capture) or per result (the rest)
        "results_per_s": round((len(daemon._result_times) - 1) / elapsed, 2) if elapsed else 0.0,
    }
