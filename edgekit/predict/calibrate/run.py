"""`edgekit profiles calibrate`: time a fixed set of models here and fit this machine's profile.

The set mixes whole architectures with small synthetic graphs that each stress one cost term
(dense convolutions, depthwise, big matmuls, long element-wise chains, concatenations, many
tiny operators), so every coefficient of the cost model is pinned by some measurement. Each
model is converted to the requested formats and precisions with edgekit's own converters, timed
with edgekit's bench loop at each thread count, analysed, and the cost model's coefficients are fitted
per engine, precision and thread count by non-negative least squares on relative error, pulled
gently towards the hardware prior where the measurements leave a term free.
"""

from __future__ import annotations

import datetime as dt
import statistics
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import DeviceError
from edgekit.predict.calibrate.clock import with_proven_clock
from edgekit.predict.calibrate.synthetic import SYNTHETIC, build_synthetic
from edgekit.predict.cost.coverage import term_shares
from edgekit.predict.cost.fit import Point, fit, leave_one_out, prediction_interval
from edgekit.predict.cost.prior import prior_coefficients
from edgekit.predict.graph import analyze
from edgekit.predict.graph.features import TERMS, Features
from edgekit.predict.profiles import (
    BandwidthSpec,
    Calibration,
    CalibrationFit,
    ComputeSpec,
    CoreCluster,
    CpuSpec,
    DeviceProfile,
    IsaFeatures,
    MemorySpec,
    RuntimeSpec,
)
from edgekit.predict.profiles.host import host_cpu, measure_bandwidth_gbs, memory_gb

Progress = Callable[[str], None]
ENGINES = {"tflite": ".tflite", "onnxruntime": ".onnx"}
# Whole architectures; none of them is one the calibration is later judged on.
NETWORKS = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v2_035", "squeezenet", "efficientnet_v2_b0", "xception")
QUICK_SET = ("conv3x3_stack", "narrow_conv_stack", "depthwise_stack", "dense_stack", "elementwise_chain", "tiny_ops")
# Of each model's timing at a thread count, the share ONNX Runtime's profiler gets to time its
# operators (the rest times the whole graph, unprofiled: the profiler adds its own work).
OPERATOR_TIMING_SHARE = 0.3


def build_calibration_model(name: str, seed: int = 0) -> Any:
    """The same weights every time: random, but seeded, so a calibration can be repeated."""
    import keras

    from edgekit.predict.calibrate.zoo import build

    keras.utils.set_random_seed(seed)
    return build_synthetic(name) if name in SYNTHETIC else build(name)


def export(model: Any, name: str, engine: str, precision: str, folder: Path) -> Path:
    """``model`` as a ``precision`` artifact for ``engine``, with random calibration inputs."""
    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite
    from edgekit.converters.to_onnx import keras_to_onnx, quantize_onnx
    from edgekit.data import Dataset
    from edgekit.formats import Precision

    shape = tuple(model.inputs[0].shape[1:])
    calibration = Dataset(
        {model.inputs[0].name: np.random.default_rng(0).uniform(0, 1, (8, *shape)).astype("float32")},
        origin="random calibration inputs",
    )
    out = folder / f"{name}_{precision}{ENGINES[engine]}"
    if out.exists():
        return out
    if engine == "tflite":
        keras_to_tflite(model, out, TFLiteOptions(Precision(precision), calibration=calibration))
        return out
    fp32 = folder / f"{name}_fp32.onnx"
    if not fp32.exists():
        keras_to_onnx(model, fp32)
    if precision == "fp32":
        return fp32
    # ONNX inputs are named after the Keras input; the data is keyed to match.
    return quantize_onnx(fp32, out, Precision(precision), calibration, keep_head_float=False)


# A model's median is settled long before this many runs: a fast synthetic graph stops here, well
# before its time is up (a device's calibration is minutes of exactly that).
MAX_TIMED_RUNS = 300
WARMUP_RUNS = 2  # after the first inference (XNNPACK packs its weights there): steady from then on


def time_model(path: Path, engine: str, threads: int, seconds: float) -> float:
    """Median latency (ms) with edgekit's bench loop, over ``seconds`` or MAX_TIMED_RUNS runs."""
    from edgekit.bench import BenchSettings, measure
    from edgekit.runtimes import load_runtime

    settings = BenchSettings(runs=MAX_TIMED_RUNS, duration_s=seconds, warmup=WARMUP_RUNS)
    result = measure(lambda: load_runtime(path, engine, threads=threads), settings)
    return float(result["p50_ms"])


@dataclass(frozen=True)
class HeldOut:
    """How well a calibration holds on models its fit did not see."""

    networks_median: float | None  # |predicted / measured − 1| of the whole networks
    networks_worst: float | None
    networks: int
    synthetic_median: float | None  # the one-term graphs: each is the main witness of its own term
    synthetic: int


def leave_one_out_summary(profile: DeviceProfile) -> HeldOut | None:
    """Median and worst error of every fit's leave-one-out predictions, networks apart from the
    synthetic graphs (leaving out the one graph that prices a term leaves that term to the prior)."""
    if profile.calibration is None:
        return None
    networks: list[float] = []
    synthetic: list[float] = []
    for f in profile.calibration.fits:
        for model, error in (f.leave_one_out_errors or {}).items():
            (networks if model in NETWORKS else synthetic).append(abs(error))
    if not networks and not synthetic:
        return None
    return HeldOut(
        networks_median=statistics.median(networks) if networks else None,
        networks_worst=max(networks) if networks else None,
        networks=len(networks),
        synthetic_median=statistics.median(synthetic) if synthetic else None,
        synthetic=len(synthetic),
    )


def host_profile_skeleton(name: str, bandwidth_gbs: float) -> DeviceProfile:
    """This machine as a profile, from /proc/cpuinfo and a bandwidth measurement."""
    cpu = host_cpu()
    known = typing.get_args(DeviceProfile.model_fields["arch"].annotation)
    if cpu.arch not in known:
        raise DeviceError(
            f"edgekit has no cost model for {cpu.arch} CPUs (it knows {', '.join(known)})",
            hint="bench on this machine without --device, or calibrate an ARM or x86 machine",
        )
    rates = cpu.macs_per_cycle()
    isa = cpu.isa
    return DeviceProfile(
        name=name,
        title=f"this machine ({cpu.name})",
        arch=cpu.arch,
        cpu=CpuSpec(
            model=cpu.name,
            clusters=[CoreCluster(count=cpu.cores, core=cpu.name, clock_ghz=cpu.clock_ghz)],
            isa=IsaFeatures(**isa),
            source="/proc/cpuinfo and /sys/devices/system/cpu (read by edgekit profiles calibrate)",
        ),
        compute=ComputeSpec(
            fp32_macs_per_cycle=float(rates["fp32"] or 8),
            fp16_macs_per_cycle=float(rates["fp16"]) if rates["fp16"] else None,
            int8_macs_per_cycle=float(rates["int8"] or 16),
            vector_bits=int(rates["bits"] or 128),
            source="two FMA pipes of the widest vector width in the CPU flags (edgekit's rule)",
        ),
        memory=MemorySpec(ram_gb=memory_gb(), kind="as reported by the OS", source="psutil.virtual_memory()"),
        bandwidth=BandwidthSpec(
            gbs=bandwidth_gbs, kind="measured", source="edgekit profiles calibrate: numpy copy of 256 MB, one core"
        ),
        runtimes=[
            RuntimeSpec(name="tflite-xnnpack", engine="tflite", overhead_mb=8, source="measured on this machine"),
            RuntimeSpec(
                name="onnxruntime-cpu", engine="onnxruntime", overhead_mb=30, source="measured on this machine"
            ),
        ],
        default_threads=cpu.cores,
        recognise=cpu.name,
    )


@dataclass(frozen=True)
class Timed:
    """A converted calibration model to time: its file, and what the fit needs to know of it."""

    name: str
    engine: str
    precision: str
    path: Path
    features: Features | None  # None: an ONNX Runtime model, read when its operators are timed
    network: bool


@dataclass(frozen=True)
class OperatorTimes:
    """A graph as its runtime ran it with every operator timed: the graph's cost terms, and each
    operator's with the seconds the runtime's profiler measured it take."""

    features: Features
    operators: tuple[tuple[np.ndarray, float], ...]


def time_operators(path: Path, engine: str, threads: int, seconds: float) -> OperatorTimes | None:
    """Every operator timed for ``seconds``, for the runtimes that time their operators (ONNX
    Runtime); None for the others (LiteRT hands the whole graph to XNNPACK, which times nothing
    apart)."""
    if engine != "onnxruntime":
        return None
    from edgekit.predict.graph.features import features_of_ops

    graph = analyze(path, engine, threads=threads, timing_budget_s=seconds)
    timed = [op for op in graph.ops if op.measured_s is not None]
    return OperatorTimes(
        Features.from_graph(graph),
        tuple((features_of_ops([op], graph.precision).vector(), float(op.measured_s or 0.0)) for op in timed),
    )


# A model's seconds at a thread count are spread over this many windows, the set timed in a
# shuffled order each round: a shared machine slows by 30–50 % for seconds at a time, and one
# window per model would let such a spell fall on a few models and bend the fit towards them.
# (Each window loads the model again: a third round took the kit's device part from 3.4 to 3.9
# minutes on two cores, against a goal of 4.)
CALIBRATION_ROUNDS = 2


def steady_ms(windows: list[float]) -> float:
    """A model's latency from the medians of its timing windows: the fastest, the machine's speed
    when nothing else takes it (a dedicated device's windows barely differ)."""
    return min(windows)


def time_all(
    models: list[Timed], threads: list[int], seconds: float, progress: Progress, rounds: int = CALIBRATION_ROUNDS
) -> list[Point]:
    """Every model at every thread count, ``seconds`` each, over ``rounds`` rounds; an ONNX
    Runtime model's operators are timed in the first (OPERATOR_TIMING_SHARE of its seconds)."""
    import random

    jobs = [(index, count) for index in range(len(models)) for count in threads]
    windows: dict[tuple[int, int], list[float]] = {job: [] for job in jobs}
    profiled: dict[tuple[int, int], OperatorTimes | None] = {}
    shuffler = random.Random(0)
    for round_index in range(rounds):
        order = list(jobs)
        shuffler.shuffle(order)
        for index, count in order:
            m = models[index]
            whole = seconds * (1 - OPERATOR_TIMING_SHARE) if m.engine == "onnxruntime" else seconds
            windows[index, count].append(time_model(m.path, m.engine, count, whole / rounds))
            if round_index == 0:
                profiled[index, count] = time_operators(m.path, m.engine, count, seconds - whole)
            progress(
                f"round {round_index + 1}/{rounds}: {m.name} · {m.engine} · {m.precision} · {count} thr: "
                f"{windows[index, count][-1]:.2f} ms"
            )
    points = []
    for index, count in jobs:
        m, timed = models[index], profiled[index, count]
        features = timed.features if timed is not None else m.features
        if features is None:
            raise DeviceError(f"calibration model {m.name} ({m.engine}) has no cost terms to fit")
        points.append(
            Point(m.name, m.engine, m.precision, count, features, steady_ms(windows[index, count]), m.network,
                  timed.operators if timed is not None else ())
        )  # fmt: skip
    return points


def fit_profile(
    profile: DeviceProfile, points: list[Point], engines: list[str], precisions: list[str], threads: list[int],
    command: str,
) -> DeviceProfile:  # fmt: skip
    """``profile`` with a calibration fitted to ``points``: per engine, precision and threads, at
    the clock the points prove (the prior and the compute floor both rest on it)."""
    profile = with_proven_clock(profile, points)
    fits = []
    for engine in engines:
        for precision in precisions:
            for count in threads:
                chosen = [p for p in points if (p.engine, p.precision, p.threads) == (engine, precision, count)]
                if not chosen:
                    continue
                prior = prior_coefficients(profile, "cpu", precision, profile.cpu.clusters[0].clock_ghz)
                if count > 1:
                    prior = prior * (0.15 + 0.85 / count)
                coefficients, low, high = fit(chosen, prior)
                held_out = leave_one_out(chosen, prior)
                # The band is what the fit gets wrong on a network it has not seen: the residuals
                # of the points it was fitted to are narrower than that (the networks set its level).
                unseen = [1 / (1 + e) for m, e in held_out.items() if m in NETWORKS and e > -1]
                if len(unseen) >= 3:
                    interval = prediction_interval(unseen)
                    low, high = min(low, interval[0]), max(high, interval[1])
                fits.append(
                    CalibrationFit(
                        engine=engine,
                        precision=precision,
                        threads=count,
                        coefficients={t: float(c) for t, c in zip(TERMS, coefficients, strict=True)},
                        residual_low=round(min(low, 0.95), 4),
                        residual_high=round(max(high, 1.05), 4),
                        points={p.model: round(p.measured_ms, 4) for p in chosen},
                        leave_one_out_errors=held_out,
                        term_shares=term_shares(coefficients, [p.features for p in chosen]),
                    )
                )
    calibration = Calibration(measured_on=dt.date.today().isoformat(), command=command, fits=fits)
    return profile.model_copy(update={"calibration": calibration})


def prepare_calibration(
    name: str,
    *,
    engines: list[str],
    precisions: list[str],
    quick: bool,
    workdir: Path,
    progress: Progress = lambda _line: None,
) -> tuple[DeviceProfile, list[Timed]]:
    """This machine's profile before fitting (its memory bandwidth measured) and the calibration
    set built, converted and analysed (needs TensorFlow): what is left is to time and fit."""
    progress("measuring memory bandwidth")
    profile = host_profile_skeleton(name, measure_bandwidth_gbs())
    converted = []
    for model_name in QUICK_SET if quick else (*NETWORKS, *SYNTHETIC):
        progress(f"building {model_name}")
        model = build_calibration_model(model_name)
        for engine in engines:
            for precision in precisions:
                artifact = export(model, model_name, engine, precision, workdir)
                features = Features.from_graph(analyze(artifact, engine))
                converted.append(Timed(model_name, engine, precision, artifact, features, model_name in NETWORKS))
    return profile, converted


def calibrate(
    name: str,
    *,
    engines: list[str],
    precisions: list[str],
    threads: list[int],
    quick: bool,
    seconds: float,
    workdir: Path,
    command: str,
    progress: Progress = lambda _line: None,
) -> DeviceProfile:
    """Build, convert, analyse and time the calibration set here (needs TensorFlow), and fit."""
    profile, models = prepare_calibration(
        name, engines=engines, precisions=precisions, quick=quick, workdir=workdir, progress=progress
    )
    points = time_all(models, threads, seconds, progress)
    return fit_profile(profile, points, engines, precisions, threads, command)


def summary(profile: DeviceProfile) -> list[dict[str, Any]]:
    rows = []
    assert profile.calibration is not None
    for f in profile.calibration.fits:
        rows.append(
            {
                "engine": f.engine,
                "precision": f.precision,
                "threads": f.threads,
                "models": len(f.points),
                "median_ms": round(statistics.median(f.points.values()), 3),
                "band": f"{f.residual_low:.2f}–{f.residual_high:.2f}",
            }
        )
    return rows
