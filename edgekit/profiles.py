"""Device profiles: what a target device is, read from the YAML files shipped in the package.

Every figure in a profile names its source; a profile with a missing, extra or mistyped
field is rejected with the key path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekit.errors import DeviceError, InputNotFoundError, UnknownNameError

PROFILE_PACKAGE = "edgekit.device_profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IsaFeatures(_Strict):
    neon: bool = Field(False, description="ARM Advanced SIMD (128-bit)")
    dotprod: bool = Field(False, description="ARMv8.2 SDOT/UDOT int8 dot-product instructions")
    fp16_arithmetic: bool = Field(False, description="native half-precision arithmetic (ARMv8.2 FP16)")
    avx2: bool = Field(False, description="x86 AVX2 + FMA")
    avx512: bool = Field(False, description="x86 AVX-512 F")
    vnni: bool = Field(False, description="int8 dot products: AVX512-VNNI or AVX-VNNI")


class CoreCluster(_Strict):
    count: int = Field(..., ge=1, description="cores in this cluster")
    core: str = Field(..., description="micro-architecture, e.g. Cortex-A76")
    clock_ghz: float = Field(..., gt=0, description="maximum clock of these cores")


class CpuSpec(_Strict):
    model: str = Field(..., description="SoC or processor name")
    clusters: list[CoreCluster] = Field(..., min_length=1, description="core clusters, fastest first")
    isa: IsaFeatures = Field(..., description="vector instruction sets that inference kernels use")
    source: str = Field(..., description="where these figures come from (URL)")

    @property
    def cores(self) -> int:
        return sum(cluster.count for cluster in self.clusters)


class MemorySpec(_Strict):
    ram_gb: float = Field(..., gt=0, description="RAM of the variant this profile describes")
    variants_gb: list[float] = Field(default_factory=list, description="other RAM sizes sold")
    kind: str = Field(..., description="memory technology, e.g. LPDDR4-3200")
    source: str = Field(..., description="where these figures come from (URL)")


class GpuSpec(_Strict):
    model: str = Field(..., description="GPU name")
    fp32_tflops: float = Field(..., gt=0, description="peak fp32 throughput")
    fp16_tflops: float | None = Field(None, gt=0, description="peak fp16 throughput (tensor cores where present)")
    int8_tops: float | None = Field(None, gt=0, description="peak int8 throughput")
    memory_gb: float | None = Field(None, gt=0, description="dedicated GPU memory")
    bandwidth_gbs: float | None = Field(None, gt=0, description="peak memory bandwidth")
    source: str = Field(..., description="where these figures come from (URL)")


class DeviceProfile(_Strict):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9-]*$", description="short name used on the command line")
    title: str = Field(..., description="human-readable device name")
    arch: Literal["arm64", "x86_64"] = Field(..., description="CPU architecture")
    cpu: CpuSpec
    memory: MemorySpec
    gpu: GpuSpec | None = None
    runtimes: list[str] = Field(..., min_length=1, description="runtimes and delegates usable on the device")
    recognise: str | None = Field(
        None, description="substring of /proc/device-tree/model (or CPU model name) that identifies this device"
    )
    notes: str = ""


def _format_validation_error(path: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{path}: {key}: {first['msg']}"


def parse_profile(text: str, origin: str) -> DeviceProfile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeviceError(f"{origin} is not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(data, dict):
        raise DeviceError(f"{origin} must be a YAML mapping of profile fields")
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        raise DeviceError(_format_validation_error(origin, exc), hint="fix the profile field named") from exc


def shipped_profile_names() -> list[str]:
    folder = resources.files(PROFILE_PACKAGE)
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_profile(name: str) -> DeviceProfile:
    """A shipped profile by name, or a YAML file by path."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise InputNotFoundError(f"profile file {path} does not exist")
        return parse_profile(path.read_text(), str(path))
    names = shipped_profile_names()
    if name not in names:
        raise UnknownNameError("device profile", name, names)
    text = resources.files(PROFILE_PACKAGE).joinpath(f"{name}.yaml").read_text()
    return parse_profile(text, f"{name}.yaml")
