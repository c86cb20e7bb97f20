"""The clock a calibration's own measurements prove this machine runs at.

A virtual machine's /proc/cpuinfo often reports the base clock and has no cpufreq entry for the
boost clock its cores really run at (2.6 GHz reported on an AMD EPYC VM whose convolutions ran
at rates only 3.1 GHz allows). The compute floor is MACs ÷ (threads × clock × peak MACs per
cycle), so a clock read too low puts the floor above what the machine does: networks that run
near peak were raised 15–18 % above their measured latency. A measurement cannot run faster
than peak, so each one proves a least clock; the calibration takes the highest of them when it
exceeds what the OS reports.
"""

from __future__ import annotations

from edgekit.predict.cost.fit import Point
from edgekit.predict.cost.prior import macs_per_cycle
from edgekit.predict.profiles import DeviceProfile


def proven_clock_ghz(profile: DeviceProfile, points: list[Point]) -> tuple[float, Point | None]:
    """The least clock (GHz) under which every point could have run as fast as it did, and the
    point that sets it (None: no point needs more than the profile's clock)."""
    best, witness = 0.0, None
    for p in points:
        if p.measured_ms <= 0 or p.features.macs <= 0:
            continue
        rate = macs_per_cycle(profile, p.features.precision) * p.threads
        clock = p.features.macs / (p.measured_ms / 1000.0) / rate / 1e9
        if clock > best:
            best, witness = clock, p
    reported = profile.cpu.clusters[0].clock_ghz
    return (best, witness) if best > reported else (reported, None)


def with_proven_clock(profile: DeviceProfile, points: list[Point]) -> DeviceProfile:
    """``profile`` with its clock raised to what ``points`` prove, saying so in its source."""
    clock, witness = proven_clock_ghz(profile, points)
    if witness is None:
        return profile
    reported = profile.cpu.clusters[0].clock_ghz
    clusters = [c.model_copy(update={"clock_ghz": round(clock, 3)}) for c in profile.cpu.clusters]
    source = (
        f"{profile.cpu.source}; clock raised from the reported {reported:g} GHz to {clock:.3f} GHz, the least "
        f"at which {witness.model} ({witness.engine} {witness.precision}, {witness.threads} thread"
        f"{'s' if witness.threads > 1 else ''}, {witness.measured_ms:.3g} ms) fits under the peak rate"
    )
    cpu = profile.cpu.model_copy(update={"clusters": clusters, "source": source})
    return profile.model_copy(update={"cpu": cpu})
