"""Predicting latency, memory fit and delegate coverage of a model on a device profile.

The cost model is additive over operators. Each operator costs its MACs at the device's
effective throughput for its class (dense convolution, depthwise, matmul), its element
operations at the vector rate, its bytes at the effective memory bandwidth, and a fixed
dispatch overhead. That is linear in its coefficients (seconds per unit of each term in
``edgekit.predict.graph.features.TERMS``), which keeps fitting stable with few measurements:

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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, DeviceError, UnknownNameError
from edgekit.predict.cost.coverage import calibration_extrapolations, extrapolations, widened
from edgekit.predict.cost.fit import band_from_references, fit_references
from edgekit.predict.cost.prior import (
    DEFAULT_PARALLEL_FRACTION,
    UNCALIBRATED_BAND,
    amdahl,
    clock_for,
    compute_precision,
    peak_flops,
    physical_floor,
    prior_coefficients,
)
from edgekit.predict.graph import GraphCost
from edgekit.predict.graph.features import TERMS, Features, features_of_ops
from edgekit.predict.profiles import DeviceProfile, Measurement, RuntimeSpec, load_profile


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

    def judged(result: tuple[float, tuple[float, float], str], fit: Any) -> tuple[float, tuple[float, float], str]:
        value, band, basis = result
        outside = calibration_extrapolations(fit, x)
        if outside:
            return value, widened(band), f"{basis}; extrapolates ({'; '.join(outside)}): band widened"
        return result

    if exact:
        fit = exact[0]
        return judged(
            (
                seconds(fit),
                (fit.residual_low, fit.residual_high),
                f"calibrated on this machine ({fit.threads} thread{'s' if fit.threads > 1 else ''})",
            ),
            fit,
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
    basis = f"calibrated on this machine, scaled to {threads} threads (Amdahl, f={fraction:.2f})"
    return judged((scaled, (low, high), basis), by_threads[0])


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

    seconds, band, basis = _base_seconds(profile, processor, engine, precision, threads_used, x)
    correction = measured_correction(profile, processor, engine, precision, threads_used)
    if correction is not None:
        factor, used = correction
        seconds *= factor
        basis += f"; corrected ×{factor:.2f} by {used} measured on this device (profiles refit)"

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


def _base_seconds(
    profile: DeviceProfile, processor: str, engine: str, precision: str, threads: int, x: Features
) -> tuple[float, tuple[float, float], str]:
    """Seconds, band and basis from the profile's calibration or references, before measurements."""
    calibrated = _calibrated_seconds(profile, engine, precision, threads, x) if processor == "cpu" else None
    if calibrated is not None:
        seconds, band, basis = calibrated
        return float(seconds), band, basis
    return _reference_seconds(profile, processor, engine, precision, threads, x)


def cpu_seconds(profile: DeviceProfile, engine: str, precision: str, threads: int, x: Features) -> float:
    """What the profile predicts for a CPU run of a graph with features ``x``: its fit, corrected by
    its measurements (without the delegate fallback and floor that need the whole graph)."""
    seconds, _, _ = _base_seconds(profile, "cpu", engine, precision, threads, x)
    correction = measured_correction(profile, "cpu", engine, precision, threads)
    return seconds * (correction[0] if correction else 1.0)


def measured_ratio(profile: DeviceProfile, m: Measurement) -> float | None:
    """Measured / predicted for one of the profile's measurements, by its fit alone (the
    measurements aside); None for a run whose terms price at nothing."""
    base, _, _ = _base_seconds(profile, "cpu", m.engine, m.precision, m.threads, m.graph_features())
    return m.latency_ms / 1000.0 / base if base > 0 else None


def correction_of(
    rated: list[tuple[Measurement, float]], engine: str, precision: str, threads: int
) -> tuple[float, int] | None:
    """The geometric mean of the ratios of this engine and precision, from those at ``threads``
    where there are any (a ratio at other threads still says how far off the fit is)."""
    points = [(m, r) for m, r in rated if m.engine == engine and m.precision == precision]
    points = [(m, r) for m, r in points if m.threads == threads] or points
    if not points:
        return None
    return float(np.exp(np.mean(np.log([r for _, r in points])))), len(points)


def measured_correction(
    profile: DeviceProfile, processor: str, engine: str, precision: str, threads: int
) -> tuple[float, int] | None:
    """How far the profile's measurements of this engine and precision sit from what it predicts
    for them. One factor, not a refit of every coefficient: a device records a handful of models,
    and a scale is what a handful can say."""
    if processor != "cpu":
        return None
    rated = []
    for m in profile.measurements:
        if m.engine == engine and m.precision == precision:
            ratio = measured_ratio(profile, m)
            if ratio is not None:
                rated.append((m, ratio))
    return correction_of(rated, engine, precision, threads)


def _reference_seconds(
    profile: DeviceProfile, processor: str, engine: str, precision: str, threads: int, x: Features
) -> tuple[float, tuple[float, float], str]:
    clock = clock_for(profile, threads)
    coefficients = prior_coefficients(profile, processor, precision, clock)
    vector = x.vector()
    source = _efficiency_source(profile, processor, engine)
    fit = fit_references(source, source.references, processor)
    if fit is None:
        factor = amdahl(threads, DEFAULT_PARALLEL_FRACTION) if processor == "cpu" else 1.0
        basis = f"{profile.name} peaks × edgekit's default efficiencies (no published measurements to fit)"
        return float(coefficients @ vector) * factor, UNCALIBRATED_BAND, basis
    seconds = fit.seconds(float(coefficients @ vector), engine, precision, threads)
    _, what = fit.scale_for(engine, precision)
    band = band_from_references(source, processor, engine)
    borrowed = ""
    if source is not profile:
        borrowed = f" of {source.name} (same cores), scaled to {profile.name}'s clock and memory"
        band = (band[0] * 0.85, band[1] * 1.15)  # another board: wider
    basis = (
        f"per-operator cost model fitted to {fit.count} published {processor} measurements{borrowed}; scale from {what}"
    )
    outside = extrapolations(source, processor, precision, threads, x)
    if outside:
        band = widened(band)
        basis += f"; extrapolates ({'; '.join(outside)}): band widened"
    return seconds, band, basis


def _efficiency_source(profile: DeviceProfile, processor: str, engine: str) -> DeviceProfile:
    """The profile whose references a prediction fits to: this one, or the one it borrows from
    (same cores) for an engine its own references do not measure and the lender's do."""
    if not profile.borrow_efficiency_from:
        return profile
    own = [r for r in profile.references if r.processor == processor]
    if any(r.engine == engine for r in own):
        return profile
    lender = load_profile(profile.borrow_efficiency_from)
    lent = [r for r in lender.references if r.processor == processor]
    if any(r.engine == engine for r in lent) or (lent and not own):
        return lender
    return profile


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
