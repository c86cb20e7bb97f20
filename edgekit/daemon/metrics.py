"""Optional Prometheus metrics for the daemon (`--metrics-port`, `--metrics-host`).

The values are read from the daemon when Prometheus scrapes, not copied once per stats
interval: a collector asks for the current stats and reports them. Counts that only rise
(results, skipped frames, drops, reconnects) are counters, named with ``_total`` so that
``rate()`` works across restarts of the daemon; levels (fps, latency, what is buffered,
whether the broker is connected) are gauges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from edgekit.errors import ConfigError, require_extra

# stats key → (metric name without _total, help)
COUNTERS = {
    "results": ("edgekit_results", "results produced by this run"),
    "skipped_frames": ("edgekit_skipped_frames", "stale frames replaced before inference"),
    "dropped_overflow": ("edgekit_dropped_overflow", "results dropped because the outbox was full"),
    "dropped_disk_full": ("edgekit_dropped_disk_full", "results dropped because the outbox's disk was full"),
    "source_reconnects": ("edgekit_source_reconnects", "times the source was reopened"),
    "broker_connects": ("edgekit_broker_connects", "connections made to the broker"),
    "broker_refusals": ("edgekit_broker_refusals", "connections the broker refused"),
}
GAUGES = {
    "camera_fps": ("edgekit_camera_fps", "frames per second read from the source"),
    "inference_fps": ("edgekit_inference_fps", "results per second"),
    "latency_p50_ms": ("edgekit_latency_p50_ms", "median per-frame processing latency"),
    "latency_p99_ms": ("edgekit_latency_p99_ms", "99th percentile per-frame processing latency"),
    "buffered": ("edgekit_buffered_results", "results waiting in the on-disk outbox"),
    "buffered_bytes": ("edgekit_buffered_bytes", "bytes of results waiting in the on-disk outbox"),
    "inflight": ("edgekit_inflight_results", "results sent and not yet acknowledged by the broker"),
    "source_gap_s": ("edgekit_source_gap_seconds", "seconds since the source last gave a frame"),
    "connected": ("edgekit_broker_connected", "1 while connected to the broker"),
    "uptime_s": ("edgekit_uptime_seconds", "seconds since the daemon started"),
}


class DaemonCollector:
    """Reports the daemon's stats at each scrape (prometheus_client's custom-collector protocol)."""

    def __init__(self, read_stats: Callable[[], dict[str, Any]], device_id: str) -> None:
        self._read_stats = read_stats
        self._device_id = device_id

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self._read_stats()
        for table, family in ((COUNTERS, CounterMetricFamily), (GAUGES, GaugeMetricFamily)):
            for key, (name, text) in table.items():
                metric = family(name, text, labels=["device_id"])
                metric.add_metric([self._device_id], float(stats.get(key) or 0))
                yield metric


class MetricsExporter:
    """The metrics endpoint, on its own thread, for as long as the daemon runs."""

    def __init__(self, host: str, port: int, device_id: str, read_stats: Callable[[], dict[str, Any]]) -> None:
        require_extra("prometheus_client", "device")
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(read_stats, device_id))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"--metrics-port {port} on {host} cannot be opened: {exc.strerror or exc}",
                hint="choose another --metrics-port (or --metrics-host)",
            ) from exc

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
