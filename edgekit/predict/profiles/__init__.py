"""Devices: their profiles (schema and store), the reference table their published figures name, and this host."""

from __future__ import annotations

from edgekit.predict.profiles.schema import (
    BandwidthSpec,
    Calibration,
    CalibrationFit,
    ComputeSpec,
    CoreCluster,
    CpuSpec,
    DeviceProfile,
    GpuSpec,
    IsaFeatures,
    Measurement,
    MemorySpec,
    Reference,
    RuntimeSpec,
)
from edgekit.predict.profiles.store import (
    load_profile,
    parse_profile,
    profile_names,
    shipped_profile_names,
    user_profile_dir,
    user_profile_names,
)

__all__ = [
    "BandwidthSpec", "Calibration", "CalibrationFit", "ComputeSpec", "CoreCluster", "CpuSpec", "DeviceProfile",
    "GpuSpec", "IsaFeatures", "Measurement", "MemorySpec", "Reference", "RuntimeSpec", "load_profile", "parse_profile",
    "profile_names", "shipped_profile_names", "user_profile_dir", "user_profile_names",
]  # fmt: skip
