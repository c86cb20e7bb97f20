"""The network between a device and the server, emulated from two numbers, and the break-even.

A request over a real link costs the server's own answer time (measured: inference plus HTTP on
the path the compare ran over) plus one round trip plus the payload's time on the wire:
request bytes over the uplink and answer bytes over the downlink. Connection set-up is left out,
as a device holding a keep-alive connection pays it once. The edge pays only its own inference.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class Link:
    rtt_ms: float = 0.0
    uplink_mbps: float | None = None  # None: transfer time not counted
    downlink_mbps: float | None = None

    def validate(self) -> Link:
        if self.rtt_ms < 0:
            raise ConfigError(f"--rtt must be zero or positive (milliseconds), got {self.rtt_ms}")
        for flag, value in (("--uplink", self.uplink_mbps), ("--downlink", self.downlink_mbps)):
            if value is not None and value <= 0:
                raise ConfigError(f"{flag} must be positive (Mbit/s), got {value}")
        return self

    def transfer_ms(self, request_bytes: int, response_bytes: int) -> float:
        up = request_bytes * 8 / (self.uplink_mbps * 1e6) * 1e3 if self.uplink_mbps else 0.0
        down = response_bytes * 8 / (self.downlink_mbps * 1e6) * 1e3 if self.downlink_mbps else 0.0
        return up + down

    def added_ms(self, request_bytes: int, response_bytes: int) -> float:
        """What the link adds to one request measured on a link of (nearly) zero length."""
        return self.rtt_ms + self.transfer_ms(request_bytes, response_bytes)

    def describe(self) -> str:
        parts = [f"RTT {self.rtt_ms:g} ms"]
        if self.uplink_mbps:
            parts.append(f"uplink {self.uplink_mbps:g} Mbit/s")
        if self.downlink_mbps:
            parts.append(f"downlink {self.downlink_mbps:g} Mbit/s")
        return ", ".join(parts)


@dataclass(frozen=True)
class BreakEven:
    """Server end to end = ``server_ms + transfer_ms + rtt``; edge = ``edge_ms`` at any RTT."""

    server_ms: float
    transfer_ms: float
    edge_ms: float

    @property
    def crossover_rtt_ms(self) -> float | None:
        """The round trip above which the edge answers sooner; None when it always does."""
        rtt = self.edge_ms - self.server_ms - self.transfer_ms
        return rtt if rtt > 0 else None

    def server_at(self, rtt_ms: float) -> float:
        return self.server_ms + self.transfer_ms + rtt_ms

    def verdict(self, rtt_ms: float) -> str:
        crossover = self.crossover_rtt_ms
        if crossover is None:
            return "the edge answers sooner at every round-trip time, even with the server next door"
        side = "edge" if rtt_ms > crossover else "server"
        return f"the edge answers sooner above {crossover:.1f} ms round trip; at {rtt_ms:g} ms the {side} wins"

    def to_dict(self) -> dict[str, float | None]:
        crossover = self.crossover_rtt_ms
        return {
            "server_ms": round(self.server_ms, 3),
            "transfer_ms": round(self.transfer_ms, 3),
            "edge_ms": round(self.edge_ms, 3),
            "crossover_rtt_ms": None if crossover is None else round(crossover, 3),
        }
