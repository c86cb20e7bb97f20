"""What this machine is: its name as a device would report it, its cores, vector units and memory.

A Raspberry Pi names itself in /proc/device-tree/model ("Raspberry Pi 4 Model B Rev 1.4"); other
machines are known by the CPU model name in /proc/cpuinfo. A profile whose ``recognise`` text
appears in that name describes this machine, so `edgekit bench --device` measures for real.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
CPUINFO = Path("/proc/cpuinfo")


def machine_name() -> str:
    """The board name from the device tree, else the CPU model name, else the platform.

    EDGEKIT_MACHINE_NAME overrides it: containers on a board often hide /proc/device-tree."""
    override = os.environ.get("EDGEKIT_MACHINE_NAME")
    if override:
        return override
    try:
        return DEVICE_TREE_MODEL.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
    except OSError:
        pass
    for line in _cpuinfo().splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def is_this_machine(recognise: str | None) -> bool:
    if not recognise:
        return False
    return recognise.lower() in machine_name().lower()


def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:
        return ""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class HostCpu:
    name: str
    arch: str  # arm64, arm32, x86_64 or x86 (arch_of)
    cores: int
    clock_ghz: float
    flags: frozenset[str]

    @property
    def isa(self) -> dict[str, bool]:
        f = self.flags
        return {
            "neon": "asimd" in f or "neon" in f,
            "dotprod": "asimddp" in f,
            "fp16_arithmetic": "asimdhp" in f,
            "avx2": "avx2" in f,
            "avx512": "avx512f" in f,
            "vnni": "avx512_vnni" in f or "avx_vnni" in f,
        }

    def macs_per_cycle(self) -> dict[str, float | int | None]:
        """Per core: two vector FMA pipes of the widest width the flags show."""
        isa = self.isa
        if self.arch in ("arm64", "arm32"):
            return {"fp32": 8, "fp16": 16 if isa["fp16_arithmetic"] else None, "int8": 32 if isa["dotprod"] else 16,
                    "bits": 128}  # fmt: skip
        if isa["avx512"]:
            return {"fp32": 32, "fp16": None, "int8": 128 if isa["vnni"] else 64, "bits": 512}
        if isa["avx2"]:
            return {"fp32": 16, "fp16": None, "int8": 64 if isa["vnni"] else 32, "bits": 256}
        return {"fp32": 8, "fp16": None, "int8": 16, "bits": 128}


def host_cpu() -> HostCpu:
    info = _cpuinfo()
    flags: set[str] = set()
    mhz: list[float] = []
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features"):
            flags.update(value.split())
        elif key == "cpu mhz":
            try:
                mhz.append(float(value))
            except ValueError:
                pass
    clock = _max_clock_ghz() or (max(mhz) / 1000.0 if mhz else 2.0)
    return HostCpu(machine_name(), arch_of(platform.machine()), usable_cores(), round(clock, 3), frozenset(flags))


def arch_of(machine: str) -> str:
    """The architecture a profile names for ``platform.machine()``: a Raspberry Pi on 32-bit
    Raspberry Pi OS says ``armv7l`` (or ``armv8l``: a 64-bit core under a 32-bit kernel) and
    runs 32-bit code, which is not the 64-bit ARM its hardware could run."""
    name = machine.lower()
    if name in ("aarch64", "arm64", "aarch64_be"):
        return "arm64"
    if name.startswith("arm"):
        return "arm32"
    if name in ("x86_64", "amd64", "x64"):
        return "x86_64"
    if name in ("i386", "i486", "i586", "i686", "x86"):
        return "x86"
    return name or "unknown"


def _max_clock_ghz() -> float | None:
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(path.read_text()) / 1e6
    except (OSError, ValueError):
        return None


def memory_gb() -> float:
    import psutil

    return round(psutil.virtual_memory().total / 1024**3, 1)


def measure_bandwidth_gbs(size_mb: int = 256, repeats: int = 5) -> float:
    """Copy bandwidth (read + write) of one core, median of ``repeats`` numpy copies."""
    source = np.ones(size_mb * 1024 * 1024 // 8, dtype=np.float64)
    target = np.empty_like(source)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        rates.append(2 * source.nbytes / (time.perf_counter() - start) / 1e9)
    return round(float(np.median(rates)), 2)
