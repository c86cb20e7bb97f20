"""Optional Prometheus metrics for the daemon (`--metrics-port`): the stats topic, scrapeable."""

from __future__ import annotations

from typing import Any

from edgekit.errors import ConfigError, require_extra

# stats key → (metric name, help)
GAUGES = {
    "camera_fps": ("edgekit_camera_fps", "frames per second read from the source"),
    "inference_fps": ("edgekit_inference_fps", "results per second"),
    "results": ("edgekit_results", "results produced by this run"),
    "skipped_frames": ("edgekit_skipped_frames", "stale frames replaced before inference"),
    "latency_p50_ms": ("edgekit_latency_p50_ms", "median per-frame processing latency"),
    "latency_p99_ms": ("edgekit_latency_p99_ms", "99th percentile per-frame processing latency"),
    "buffered": ("edgekit_buffered_results", "results waiting in the on-disk outbox"),
    "dropped_overflow": ("edgekit_dropped_results", "results dropped because the outbox was full"),
    "source_reconnects": ("edgekit_source_reconnects", "times the source was reopened"),
    "connected": ("edgekit_broker_connected", "1 while connected to the broker"),
}


class MetricsExporter:
    def __init__(self, port: int, device_id: str) -> None:
        require_extra("prometheus_client", "device")
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.gauges = {
            key: Gauge(name, text, ["device_id"], registry=self.registry).labels(device_id=device_id)
            for key, (name, text) in GAUGES.items()
        }
        try:
            start_http_server(port, addr="0.0.0.0", registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {port} cannot be opened: {exc.strerror or exc}") from exc

    def update(self, stats: dict[str, Any]) -> None:
        for key, gauge in self.gauges.items():
            gauge.set(float(stats.get(key) or 0))
