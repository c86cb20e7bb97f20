"""Predicting latency, memory fit and delegate coverage of a model on a device profile.

The cost model is additive over operators. Each operator costs its MACs at the device's
effective throughput for its class (dense convolution, depthwise, matmul), its element
operations at the vector rate, its bytes at the effective memory bandwidth, and a fixed
dispatch overhead. That is linear in its coefficients (seconds per unit of each term in
``edgekit.features.TERMS``), which keeps fitting stable with few measurements:

- the **prior** comes from the profile's hardware figures (peak MACs per cycle × clock,
  bandwidth) times default efficiencies;
- a profile with **published references** rescales the prior per engine and precision (and
  fits the parallel fraction of Amdahl's law when the references span thread counts);
- a **calibrated** profile (``edgekit profiles calibrate``) has all its coefficients fitted by
  non-negative least squares on this machine's measurements, per engine, precision and threads.

Every prediction carries a low–high band from the fit's residuals and says what it rests on.
Plain "FLOPs ÷ peak" is computed beside it as the baseline the cost model must beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, DeviceError
from edgekit.features import TERMS, Features, features_of_ops
from edgekit.graph import GraphCost
from edgekit.profiles import DeviceProfile, Reference, RuntimeSpec, load_profile

# Default efficiencies (share of peak reached) for a device with no fit of its own. They are
# the order of magnitude XNNPACK-class kernels reach on phone and board CPUs; references and
# calibration replace them.
CPU_EFFICIENCY = {
    "conv": 0.55, "output": 1.0, "depthwise": 0.18, "matmul": 0.35, "element": 0.25, "activation": 0.05,
    "fallback": 0.03, "bandwidth": 0.25,
}  # fmt: skip
GPU_EFFICIENCY = {
    "conv": 0.30, "output": 0.05, "depthwise": 0.08, "matmul": 0.15, "element": 0.05, "activation": 0.02,
    "fallback": 0.02, "bandwidth": 0.4,
}  # fmt: skip
CPU_DISPATCH_S = 3e-6  # per operator: the interpreter's call and the thread pool's fork/join
GPU_DISPATCH_S = 25e-6  # per kernel launch on a mobile GPU
DEFAULT_PARALLEL_FRACTION = 0.85
UNCALIBRATED_BAND = (0.5, 1.6)
FEW_REFERENCES_BAND = (0.7, 1.4)
MIN_BAND = 0.10


def compute_precision(precision: str, processor: str) -> str:
    """The arithmetic a model's kernels run at: fp16 and dynamic-range models run their
    matmuls in fp32 and int8 respectively on a CPU."""
    if processor == "cpu":
        return {"fp16": "fp32", "dynamic": "int8"}.get(precision, precision)
    return {"dynamic": "fp32"}.get(precision, precision)


def clock_for(profile: DeviceProfile, threads: int) -> float:
    """Clock of the slowest core a run on ``threads`` threads uses (threads go to the fastest cores)."""
    remaining = threads
    clock = profile.cpu.clusters[0].clock_ghz
    for cluster in profile.cpu.clusters:
        clock = cluster.clock_ghz
        remaining -= cluster.count
        if remaining <= 0:
            break
    return clock


def amdahl(threads: int, parallel_fraction: float) -> float:
    """Run time at ``threads`` as a share of the one-thread run time."""
    return (1.0 - parallel_fraction) + parallel_fraction / max(1, threads)


def prior_coefficients(profile: DeviceProfile, processor: str, precision: str, clock_ghz: float) -> np.ndarray:
    """Seconds per unit of each cost term (``TERMS``), from the hardware figures and default
    efficiencies."""
    if processor == "gpu":
        gpu = profile.gpu
        if gpu is None:
            raise DeviceError(f"profile {profile.name} has no GPU")
        tflops = {
            "int8": (gpu.int8_tops or gpu.fp16_tflops or gpu.fp32_tflops),
            "fp16": (gpu.fp16_tflops or gpu.fp32_tflops),
        }.get(precision, gpu.fp32_tflops)
        macs_per_s = tflops * 1e12 / 2
        float_macs_per_s = gpu.fp32_tflops * 1e12 / 2
        element_per_s = macs_per_s
        e = GPU_EFFICIENCY
        bandwidth = (gpu.bandwidth_gbs or profile.bandwidth.gbs) * 1e9
        dispatch = GPU_DISPATCH_S
    else:
        compute = profile.compute
        macs_per_s = macs_per_cycle(profile, precision) * clock_ghz * 1e9
        float_macs_per_s = macs_per_cycle(profile, "fp32") * clock_ghz * 1e9
        element_per_s = compute.vector_bits / (8 if precision == "int8" else 32) * clock_ghz * 1e9
        e = CPU_EFFICIENCY
        bandwidth = profile.bandwidth.gbs * 1e9
        dispatch = CPU_DISPATCH_S
    per_term = {
        "conv_macs": 1 / (macs_per_s * e["conv"]),
        "conv_outputs": 1 / (element_per_s * e["output"]),
        "depthwise_macs": 1 / (macs_per_s * e["depthwise"]),
        "depthwise_outputs": 1 / (element_per_s * e["output"]),
        "depthwise_tail_macs": 1 / (macs_per_s * e["depthwise"]),
        "large_depthwise_macs": 1 / (macs_per_s * e["depthwise"]),
        "matmul_macs": 1 / (macs_per_s * e["matmul"]),
        "float_macs": 1 / (float_macs_per_s * e["depthwise"]),
        "generic_depthwise_macs": 1 / (float_macs_per_s * e["depthwise"]),
        "generic_depthwise_channels": dispatch / 50,
        "element_ops": 1 / (element_per_s * e["element"]),
        "quant_ops": 1 / (element_per_s * e["element"]),
        "activation_ops": 1 / (element_per_s * e["activation"]),
        "broadcast_ops": 1 / (element_per_s * e["element"]),
        "pool_ops": 1 / (element_per_s * e["element"]),
        "memory_ops": 1 / (element_per_s * e["element"]),
        "fallback_ops": 1 / (element_per_s * e["fallback"]),
        "partitions": dispatch * 5,
        "bytes": 1 / (bandwidth * e["bandwidth"]),
        "ops": dispatch,
    }
    return np.array([per_term[t] for t in TERMS])


def peak_flops(profile: DeviceProfile, processor: str, precision: str, threads: int) -> float:
    if processor == "gpu" and profile.gpu is not None:
        gpu = profile.gpu
        if precision == "int8" and gpu.int8_tops:
            return gpu.int8_tops * 1e12
        if precision == "fp16" and gpu.fp16_tflops:
            return gpu.fp16_tflops * 1e12
        return gpu.fp32_tflops * 1e12
    return 2 * macs_per_cycle(profile, precision) * clock_for(profile, threads) * 1e9 * threads


def physical_floor(
    graph: GraphCost, profile: DeviceProfile, processor: str, precision: str, threads: int
) -> tuple[float, str]:
    """The fastest a device could possibly run ``graph``, in seconds, and what bounds it: every
    MAC at the peak rate of ``threads`` cores (MACs ÷ (threads × clock × MACs per cycle)), or
    the weights read once at the memory bandwidth."""
    if processor == "gpu" and profile.gpu is not None:
        compute = 2 * graph.macs / peak_flops(profile, processor, precision, 1)
    else:
        compute = graph.macs / (threads * clock_for(profile, threads) * 1e9 * macs_per_cycle(profile, precision))
    memory = graph.weight_bytes / (profile.bandwidth.gbs * 1e9)
    return (compute, "compute") if compute >= memory else (memory, "memory")


def macs_per_cycle(profile: DeviceProfile, precision: str) -> float:
    """Peak MACs per core and cycle at ``precision``; fp16 without native support runs as fp32."""
    compute = profile.compute
    if precision == "int8":
        return compute.int8_macs_per_cycle
    if precision == "fp16" and compute.fp16_macs_per_cycle:
        return compute.fp16_macs_per_cycle
    return compute.fp32_macs_per_cycle


# ---------------------------------------------------------------------------------------------
# fitting to published references


@dataclass(frozen=True)
class ReferenceFit:
    """The prior rescaled to a profile's references: one scale per (engine, precision), and
    Amdahl's parallel fraction when the references span thread counts."""

    processor: str
    scales: dict[tuple[str, str], float]
    parallel_fraction: float
    count: int
    engines: tuple[str, ...]

    def scale_for(self, engine: str, precision: str) -> tuple[float, str]:
        if (engine, precision) in self.scales:
            return self.scales[(engine, precision)], f"{engine} {precision} references"
        same_engine = [v for (e, _), v in self.scales.items() if e == engine]
        if same_engine:
            return _geomean(same_engine), f"{engine} references of other precisions"
        return _geomean(list(self.scales.values())), f"{'/'.join(self.engines)} references ({engine} not measured)"

    def seconds(self, prior_s: float, engine: str, precision: str, threads: int) -> float:
        factor = amdahl(threads, self.parallel_fraction) if self.processor == "cpu" else 1.0
        return prior_s * self.scale_for(engine, precision)[0] * factor


def _geomean(values: list[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def _reference_prior_seconds(profile: DeviceProfile, ref: Reference) -> float:
    """The prior's one-thread seconds for a reference's model, at the clock it ran at."""
    from edgekit.reference_models import reference_features

    precision = compute_precision(ref.precision, ref.processor)
    features = reference_features(ref.model, precision)
    clock = ref.clock_ghz or clock_for(profile, ref.threads)
    return float(prior_coefficients(profile, ref.processor, precision, clock) @ features.vector())


def fit_references(profile: DeviceProfile, refs: list[Reference], processor: str) -> ReferenceFit | None:
    refs = [r for r in refs if r.processor == processor]
    if not refs:
        return None
    return _fit(refs, [_reference_prior_seconds(profile, r) for r in refs], processor)


def _fit(refs: list[Reference], priors: list[float], processor: str) -> ReferenceFit:
    """Scales and parallel fraction for ``refs``, whose prior seconds are ``priors``."""

    def log_ratios(fraction: float) -> dict[tuple[str, str], list[float]]:
        groups: dict[tuple[str, str], list[float]] = {}
        for ref, prior in zip(refs, priors, strict=True):
            factor = amdahl(ref.threads, fraction) if processor == "cpu" else 1.0
            key = (ref.engine, compute_precision(ref.precision, processor))
            groups.setdefault(key, []).append(math.log(ref.latency_ms / 1000.0 / (prior * factor)))
        return groups

    fraction = DEFAULT_PARALLEL_FRACTION
    if processor == "cpu" and len({r.threads for r in refs}) > 1:
        # The fraction that makes each group's measured / prior ratios most alike.
        def spread(f: float) -> float:
            return sum(float(np.var(v)) * len(v) for v in log_ratios(f).values())

        fraction = float(min(np.linspace(0.3, 0.99, 70), key=spread))
    scales = {key: float(math.exp(sum(v) / len(v))) for key, v in log_ratios(fraction).items()}
    return ReferenceFit(
        processor=processor,
        scales=scales,
        parallel_fraction=fraction,
        count=len(refs),
        engines=tuple(sorted({r.engine for r in refs})),
    )


def leave_one_out(profile: DeviceProfile, processor: str = "cpu") -> list[dict[str, Any]]:
    """Each reference predicted by the profile fitted without it."""
    refs = [r for r in profile.references if r.processor == processor]
    if len(refs) < 2:
        return []  # nothing left to fit once the one reference is out
    priors = [_reference_prior_seconds(profile, r) for r in refs]
    rows = []
    for index, ref in enumerate(refs):
        fit = _fit(refs[:index] + refs[index + 1 :], priors[:index] + priors[index + 1 :], processor)
        precision = compute_precision(ref.precision, processor)
        predicted = fit.seconds(priors[index], ref.engine, precision, ref.threads) * 1000.0
        rows.append(
            {
                "model": ref.model,
                "engine": ref.engine,
                "precision": ref.precision,
                "threads": ref.threads,
                "measured_ms": ref.latency_ms,
                "predicted_ms": round(predicted, 3),
                "error": round(predicted / ref.latency_ms - 1.0, 4),
            }
        )
    return rows


def _band_from_loo(profile: DeviceProfile, processor: str, engine: str) -> tuple[float, float]:
    """10th–90th percentile of measured / predicted over the leave-one-out predictions, from the
    same engine's references when there are enough of them."""
    rows = leave_one_out(profile, processor)
    same = [r for r in rows if r["engine"] == engine]
    rows = same if len(same) >= 4 else rows
    if len(rows) < 4:
        return FEW_REFERENCES_BAND
    ratios = np.array([r["measured_ms"] / r["predicted_ms"] for r in rows])
    low, high = float(np.quantile(ratios, 0.1)), float(np.quantile(ratios, 0.9))
    return min(low, 1 - MIN_BAND), max(high, 1 + MIN_BAND)


# ---------------------------------------------------------------------------------------------
# prediction


@dataclass
class Prediction:
    device: str
    runtime: str
    processor: str
    engine: str
    precision: str
    threads: int | None
    latency_ms: float
    low_ms: float
    high_ms: float
    fits_memory: bool
    memory: dict[str, float]
    unsupported_ops: list[str]
    fallback_ms: float
    flops_baseline_ms: float
    basis: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": round(self.latency_ms, 3),
            "low_ms": round(self.low_ms, 3),
            "high_ms": round(self.high_ms, 3),
            "fits_memory": self.fits_memory,
            "unsupported_ops": self.unsupported_ops,
            "basis": self.basis,
            "device": self.device,
            "runtime": self.runtime,
            "processor": self.processor,
            "precision": self.precision,
            "threads": self.threads,
            "memory_mb": {k: round(v, 2) for k, v in self.memory.items()},
            "fallback_ms": round(self.fallback_ms, 3),
            "flops_baseline_ms": round(self.flops_baseline_ms, 4),
            "notes": self.notes,
        }


def parse_device(text: str) -> tuple[DeviceProfile, str | None]:
    """``rpi4`` or ``pixel4:tflite-gpu`` (a profile and, optionally, one of its runtimes)."""
    name, _, runtime = text.partition(":")
    profile = load_profile(name)
    return profile, runtime or None


def choose_runtime(profile: DeviceProfile, engine: str, runtime: str | None) -> RuntimeSpec:
    if runtime is not None:
        for spec in profile.runtimes:
            if spec.name == runtime:
                if spec.engine != engine:
                    raise ConfigError(
                        f"runtime {runtime} on {profile.name} runs {spec.engine} models, not {engine}",
                        hint=f"give it a model in the {spec.engine} format",
                    )
                return spec
        from edgekit.errors import UnknownNameError

        raise UnknownNameError(f"runtime of {profile.name}", runtime, [s.name for s in profile.runtimes])
    for spec in profile.runtimes:
        if spec.engine == engine:
            return spec
    raise DeviceError(
        f"profile {profile.name} lists no {engine} runtime",
        hint=f"its runtimes are: {', '.join(s.name for s in profile.runtimes)}",
    )


def check_threads(profile: DeviceProfile, threads: int | None) -> int:
    if threads is None:
        return profile.default_threads
    if threads > profile.max_threads:
        raise ConfigError(
            f"--threads {threads} is more than {profile.name} has cores ({profile.max_threads})",
            hint=f"use at most {profile.max_threads}",
        )
    return threads


def _calibrated_seconds(profile: DeviceProfile, engine: str, precision: str, threads: int, x: Features) -> Any:
    """Seconds and band from a calibration fit, scaled to ``threads`` when not measured there."""
    if profile.calibration is None:
        return None
    fits = [f for f in profile.calibration.fits if f.engine == engine and f.precision == precision]
    if not fits:
        return None
    exact = [f for f in fits if f.threads == threads]

    def seconds(fit: Any) -> float:
        # A profile calibrated before a term existed has no coefficient for it: it was zero there.
        return float(np.array([fit.coefficients.get(t, 0.0) for t in TERMS]) @ x.vector())

    if exact:
        fit = exact[0]
        return (
            seconds(fit),
            (fit.residual_low, fit.residual_high),
            f"calibrated on this machine ({fit.threads} thread{'s' if fit.threads > 1 else ''})",
        )
    by_threads = sorted(fits, key=lambda f: f.threads)
    t1 = seconds(by_threads[0])
    fraction = DEFAULT_PARALLEL_FRACTION
    if len(by_threads) > 1:
        n = by_threads[-1].threads
        ratio = seconds(by_threads[-1]) / t1
        fraction = min(0.99, max(0.0, (1 - ratio) / (1 - 1 / n)))
    scaled = t1 * amdahl(threads, fraction) / amdahl(by_threads[0].threads, fraction)
    low = min(f.residual_low for f in fits) * 0.95
    high = max(f.residual_high for f in fits) * 1.05
    return scaled, (low, high), f"calibrated on this machine, scaled to {threads} threads (Amdahl, f={fraction:.2f})"


def predict(
    graph: GraphCost,
    profile: DeviceProfile,
    *,
    engine: str,
    threads: int | None = None,
    runtime: str | None = None,
) -> Prediction:
    spec = choose_runtime(profile, engine, runtime)
    processor = spec.processor
    threads_used = check_threads(profile, threads) if processor == "cpu" else 1
    precision = compute_precision(graph.precision, processor)
    x = Features.from_graph(graph)
    notes: list[str] = []
    if x.unknown_ops:
        notes.append(
            f"{x.unknown_ops} operators of unknown cost ({', '.join(graph.unknown_kinds)}) counted as dispatch only"
        )

    calibrated = _calibrated_seconds(profile, engine, precision, threads_used, x) if processor == "cpu" else None
    if calibrated is not None:
        seconds, band, basis = calibrated
    else:
        seconds, band, basis = _reference_seconds(profile, processor, engine, precision, threads_used, x)

    unsupported, fallback_s = _delegate_fallback(graph, profile, spec, precision)
    if unsupported:
        notes.append(f"{len(unsupported)} operator kinds fall back to the CPU")
    total = seconds + fallback_s
    floor_s, floor_kind = physical_floor(graph, profile, processor, precision, threads_used)
    if total < floor_s:
        # No fit may promise what the silicon cannot do: the model's MACs at the device's peak,
        # its weights at the memory bandwidth.
        notes.append(f"raised to the device's {floor_kind} floor ({floor_s * 1000:.3g} ms)")
        total = floor_s
    memory = _memory(graph, profile, spec)
    flops_baseline = graph.flops / peak_flops(profile, processor, precision, threads_used)
    low_s = max(total * band[0], floor_s)
    return Prediction(
        device=profile.name,
        runtime=spec.name,
        processor=processor,
        engine=engine,
        precision=precision,
        threads=threads_used if processor == "cpu" else None,
        latency_ms=total * 1000.0,
        low_ms=low_s * 1000.0,
        high_ms=total * 1000.0 * band[1],
        fits_memory=memory["need"] <= memory["available"],
        memory=memory,
        unsupported_ops=unsupported,
        fallback_ms=fallback_s * 1000.0,
        flops_baseline_ms=flops_baseline * 1000.0,
        basis=basis,
        notes=notes,
    )


def _reference_seconds(
    profile: DeviceProfile, processor: str, engine: str, precision: str, threads: int, x: Features
) -> tuple[float, tuple[float, float], str]:
    clock = clock_for(profile, threads)
    coefficients = prior_coefficients(profile, processor, precision, clock)
    vector = x.vector()
    source = profile
    if not [r for r in profile.references if r.processor == processor] and profile.borrow_efficiency_from:
        source = load_profile(profile.borrow_efficiency_from)
    fit = fit_references(source, source.references, processor)
    if fit is None:
        factor = amdahl(threads, DEFAULT_PARALLEL_FRACTION) if processor == "cpu" else 1.0
        basis = f"{profile.name} peaks × edgekit's default efficiencies (no published measurements to fit)"
        return float(coefficients @ vector) * factor, UNCALIBRATED_BAND, basis
    seconds = fit.seconds(float(coefficients @ vector), engine, precision, threads)
    _, what = fit.scale_for(engine, precision)
    band = _band_from_loo(source, processor, engine)
    borrowed = ""
    if source is not profile:
        borrowed = f" of {source.name} (same cores), scaled to {profile.name}'s clock and memory"
        band = (band[0] * 0.85, band[1] * 1.15)  # another board: wider
    basis = (
        f"per-operator cost model fitted to {fit.count} published {processor} measurements{borrowed}; scale from {what}"
    )
    return seconds, band, basis


def _delegate_fallback(
    graph: GraphCost, profile: DeviceProfile, spec: RuntimeSpec, precision: str
) -> tuple[list[str], float]:
    """Operator kinds the delegate cannot run, and what running them on the CPU costs."""
    if spec.supported_ops is None or graph.format != spec.engine:
        return [], 0.0
    supported = {kind.upper() for kind in spec.supported_ops}
    flags = [op.kind.upper() not in supported for op in graph.ops]
    unsupported = sorted({op.kind for op, bad in zip(graph.ops, flags, strict=True) if bad})
    if not unsupported:
        return [], 0.0
    partitions = sum(1 for i, bad in enumerate(flags) if bad and (i == 0 or not flags[i - 1]))
    fallen = [op for op, bad in zip(graph.ops, flags, strict=True) if bad]
    cpu = profile.runtime(spec.engine, "cpu")
    cpu_precision = compute_precision(graph.precision, "cpu")
    threads = profile.default_threads
    coefficients = prior_coefficients(profile, "cpu", cpu_precision, clock_for(profile, threads))
    vector = features_of_ops(fallen, cpu_precision).vector()
    fit = fit_references(profile, profile.references, "cpu") if cpu is not None else None
    if fit is not None:
        cpu_seconds = fit.seconds(float(coefficients @ vector), spec.engine, cpu_precision, threads)
    else:
        cpu_seconds = float(coefficients @ vector) * amdahl(threads, DEFAULT_PARALLEL_FRACTION)
    # Each hand-over also moves the boundary tensors at the memory bandwidth.
    boundary_bytes = sum(op.bytes for op in fallen) / max(1, len(fallen)) * partitions
    seconds = (
        cpu_seconds + partitions * spec.partition_overhead_ms / 1000.0 + boundary_bytes / (profile.bandwidth.gbs * 1e9)
    )
    return unsupported, seconds


def _memory(graph: GraphCost, profile: DeviceProfile, spec: RuntimeSpec) -> dict[str, float]:
    mb = 1024.0 * 1024.0
    weights = graph.weight_bytes / mb
    activations = graph.peak_activation_bytes / mb
    need = weights + activations + spec.overhead_mb
    if spec.processor == "gpu" and profile.gpu is not None and profile.gpu.memory_gb:
        available = profile.gpu.memory_gb * 1024.0
    else:
        available = profile.memory.ram_gb * 1024.0 * profile.memory.usable_fraction
    return {
        "weights": weights,
        "activations": activations,
        "runtime": spec.overhead_mb,
        "need": need,
        "available": available,
    }
