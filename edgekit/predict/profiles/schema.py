"""What a device profile holds: every figure with its source, no field missing, extra or mistyped."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgekit.predict.graph.features import LATER_TERMS, TERMS, Features
from edgekit.predict.profiles.references import reference_names


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
    usable_fraction: float = Field(
        0.75,
        gt=0,
        le=1,
        description="share of RAM one application can count on (edgekit assumption: the OS keeps the rest)",
    )
    source: str = Field(..., description="where these figures come from (URL)")


class GpuSpec(_Strict):
    model: str = Field(..., description="GPU name")
    fp32_tflops: float = Field(..., gt=0, description="peak fp32 throughput")
    fp16_tflops: float | None = Field(None, gt=0, description="peak fp16 throughput (tensor cores where present)")
    int8_tops: float | None = Field(None, gt=0, description="peak int8 throughput")
    memory_gb: float | None = Field(None, gt=0, description="dedicated GPU memory")
    bandwidth_gbs: float | None = Field(None, gt=0, description="peak memory bandwidth")
    source: str = Field(..., description="where these figures come from (URL)")


class ComputeSpec(_Strict):
    """Peak arithmetic per core and cycle; peak per second is this × clock × cores."""

    fp32_macs_per_cycle: float = Field(..., gt=0, description="fp32 multiply-accumulates per core per cycle")
    fp16_macs_per_cycle: float | None = Field(None, gt=0, description="fp16 MACs per core per cycle, if native")
    int8_macs_per_cycle: float = Field(..., gt=0, description="int8 MACs per core per cycle")
    vector_bits: int = Field(128, description="SIMD width the element-wise kernels use")
    source: str = Field(..., description="where these figures come from (URL)")
    notes: str = ""


class BandwidthSpec(_Strict):
    gbs: float = Field(..., gt=0, description="memory bandwidth in GB/s")
    kind: Literal["measured", "theoretical"] = Field(..., description="a measurement, or bus width × transfer rate")
    source: str = Field(..., description="where this figure comes from (URL, or the command that measured it)")


class RuntimeSpec(_Strict):
    """A runtime or delegate usable on the device, and what it cannot run."""

    name: str = Field(..., description="e.g. tflite-xnnpack, tflite-gpu, onnxruntime-cpu")
    engine: Literal["tflite", "onnxruntime", "openvino", "ncnn", "tensorrt"] = Field(
        ..., description="the inference engine; edgekit's runtime of the same name predicts for it"
    )
    processor: Literal["cpu", "gpu", "npu"] = "cpu"
    supported_ops: list[str] | None = Field(
        None, description="operator kinds the delegate runs; others fall back to the CPU (None: all)"
    )
    partition_overhead_ms: float = Field(
        0.0, ge=0, description="cost of each hand-over between this delegate and the CPU"
    )
    overhead_mb: float = Field(10.0, ge=0, description="memory the runtime itself takes beyond the model")
    source: str = Field(..., description="where the operator limits come from (URL)")


class Reference(_Strict):
    """A published latency of a named architecture on this device."""

    model: str = Field(
        ...,
        description="architecture name in edgekit's reference table (edgekit/predict/profiles/reference_models.json)",
    )
    runtime: str = Field(..., description="runtime name as listed under runtimes, or the engine that measured it")
    engine: Literal["tflite", "onnxruntime", "openvino", "ncnn", "tensorrt", "pytorch"]
    processor: Literal["cpu", "gpu", "npu"] = "cpu"
    precision: Literal["fp32", "fp16", "int8"]
    arithmetic: Literal["fp32", "fp16", "int8"] | None = Field(
        None,
        description="the arithmetic the kernels ran at, where the engine chose one other than the model's precision "
        "(ncnn computes fp32 models in fp16 on cores with FP16 arithmetic)",
    )
    threads: int = Field(1, ge=1)
    latency_ms: float = Field(..., gt=0)
    clock_ghz: float | None = Field(None, gt=0, description="the clock the measurement ran at, if not the profile's")
    source: str = Field(..., description="URL of the published figure")
    notes: str = ""

    @field_validator("model")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in reference_names():
            raise ValueError(f"'{value}' is not in edgekit's reference table ({', '.join(reference_names())})")
        return value


class CalibrationFit(_Strict):
    """One fitted cost model, written by `edgekit profiles calibrate`."""

    engine: Literal["tflite", "onnxruntime", "openvino"]
    precision: Literal["fp32", "fp16", "int8"]
    threads: int = Field(..., ge=1)
    coefficients: dict[str, float] = Field(..., description="seconds per unit of each cost term")
    residual_low: float = Field(
        ...,
        description="low end of measured / predicted: the lower of the calibration set's 10th percentile and of "
        "an 80 % prediction interval from its networks, each predicted by a fit without it (Student's t)",
    )
    residual_high: float = Field(..., description="high end of measured / predicted, likewise (the higher of the two)")
    points: dict[str, float] = Field(..., description="calibration model → measured median latency (ms)")
    leave_one_out_errors: dict[str, float] | None = Field(
        None, description="calibration model → predicted / measured − 1 by a fit made without that model"
    )
    term_shares: dict[str, float] | None = Field(
        None,
        description="cost term → the largest share of a calibration model's fitted time it carries (what a "
        "prediction is judged against: a model whose time rests on a term no calibration model exercised "
        "extrapolates)",
    )


def check_cost_terms(value: dict[str, Any]) -> dict[str, Any]:
    """A model's cost terms as a recorded run or a kit holds them: every term of the cost model
    there, each a finite number ≥ 0 (other keys, as a later edgekit may add, are ignored; a term
    added after it was written is zero there)."""
    missing = [term for term in TERMS if term not in value and term not in LATER_TERMS]
    if missing:
        raise ValueError(f"lacks the cost terms {', '.join(missing)}")
    for term in TERMS:
        number = value.get(term, 0.0)
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) or number < 0:
            raise ValueError(f"cost term {term} must be a finite number ≥ 0, got {number!r}")
    return value


class Measurement(_Strict):
    """A latency measured on the device (`edgekit bench --record`), with the graph features of the
    model it ran, folded into a profile by `edgekit profiles refit`."""

    model: str = Field(..., description="the model file's name, as benched")
    engine: Literal["tflite", "onnxruntime", "openvino"]
    precision: Literal["fp32", "fp16", "int8"] = Field(..., description="the arithmetic its kernels ran at")
    threads: int = Field(..., ge=1)
    latency_ms: float = Field(..., gt=0, description="median latency measured")
    features: dict[str, float] = Field(..., description="the model's cost terms (edgekit.predict.graph.features)")
    measured_on: str = Field(..., description="ISO date of the measurement")
    source: str = Field(..., description="the command and machine that measured it")

    @field_validator("features")
    @classmethod
    def _every_term(cls, value: dict[str, float]) -> dict[str, float]:
        return check_cost_terms(value)

    def graph_features(self) -> Features:
        """The run's cost terms as the cost model takes them."""
        return Features.from_dict({**self.features, "precision": self.precision})


class Calibration(_Strict):
    measured_on: str = Field(..., description="ISO date of the calibration run")
    command: str
    fits: list[CalibrationFit]


class DeviceProfile(_Strict):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9-]*$", description="short name used on the command line")
    title: str = Field(..., description="human-readable device name")
    arch: Literal["arm64", "arm32", "x86_64", "x86"] = Field(
        ..., description="CPU architecture (arm32: 32-bit ARM code, e.g. 32-bit Raspberry Pi OS)"
    )
    cpu: CpuSpec
    compute: ComputeSpec
    memory: MemorySpec
    bandwidth: BandwidthSpec
    gpu: GpuSpec | None = None
    runtimes: list[RuntimeSpec] = Field(..., min_length=1, description="runtimes and delegates usable on the device")
    default_threads: int = Field(..., ge=1, description="threads a prediction assumes when none are given")
    references: list[Reference] = Field(default_factory=list, description="published measurements the model fits")
    calibration: Calibration | None = None
    measurements: list[Measurement] = Field(
        default_factory=list,
        description="latencies measured on this device that correct the fit above (edgekit profiles refit)",
    )
    recognise: str | None = Field(
        None, description="substring of /proc/device-tree/model (or CPU model name) that identifies this device"
    )
    borrow_efficiency_from: str | None = Field(
        None,
        description="a profile with the same cores whose fitted efficiencies this one uses for the engines "
        "its own references do not measure",
    )
    notes: str = ""

    @property
    def max_threads(self) -> int:
        return self.cpu.cores

    def runtime(self, engine: str, processor: str = "cpu") -> RuntimeSpec | None:
        for spec in self.runtimes:
            if spec.engine == engine and spec.processor == processor:
                return spec
        return None
