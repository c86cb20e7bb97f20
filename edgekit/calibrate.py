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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.features import TERMS, Features
from edgekit.profiles import (
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

Progress = Callable[[str], None]
ENGINES = {"tflite": ".tflite", "onnxruntime": ".onnx"}
PRIOR_WEIGHT = 0.01  # how hard the fit leans on the prior where the data says little
# Terms whose price differs by orders of magnitude between runtimes (XNNPACK's generic path for
# large depthwise kernels; ONNX Runtime's per-channel GEMMs for a depthwise convolution):
# the prior, one depthwise rate for all, must not hold them back.
LOOSE_TERMS = {
    "large_depthwise_macs": 0.001,
    "depthwise_tail_macs": 0.001,
    "generic_depthwise_macs": 0.001,
    "generic_depthwise_channels": 0.001,
}


def _synthetic(name: str) -> Any:
    """Small graphs, each dominated by one cost term."""
    import keras
    from keras import layers

    def model(shape: tuple[int, ...], body: Callable[[Any], Any]) -> Any:
        inputs = keras.Input(shape)
        return keras.Model(inputs, body(inputs), name=name)

    if name == "conv3x3_stack":
        return model(
            (56, 56, 32), lambda x: _repeat(x, 4, lambda y: layers.Conv2D(64, 3, padding="same", activation="relu")(y))
        )
    if name == "narrow_conv_stack":
        return model(
            (56, 56, 24),
            lambda x: _repeat(x, 8, lambda y: layers.Conv2D(40, 1, activation="relu")(layers.Conv2D(24, 1)(y))),
        )
    if name == "depthwise5_stack":
        return model(
            (56, 56, 48),
            lambda x: _repeat(x, 6, lambda y: layers.DepthwiseConv2D(5, padding="same", activation="relu")(y)),
        )
    if name == "depthwise7_stack":
        return model(
            (56, 56, 32),
            lambda x: _repeat(x, 4, lambda y: layers.DepthwiseConv2D(7, padding="same", activation="relu")(y)),
        )
    if name == "swish_depthwise":
        # A depthwise convolution feeding a swish: ONNX Runtime cannot fuse it into an int8
        # kernel, so a quantized graph runs it in float.
        return model(
            (56, 56, 64),
            lambda x: _repeat(x, 4, lambda y: layers.Activation("swish")(layers.DepthwiseConv2D(3, padding="same")(y))),
        )
    if name == "swish_depthwise_small":
        # The same at the late stages' size: many channels, few pixels each.
        return model(
            (14, 14, 240),
            lambda x: _repeat(x, 6, lambda y: layers.Activation("swish")(layers.DepthwiseConv2D(5, padding="same")(y))),
        )
    if name == "narrow_depthwise":
        # Depthwise convolutions on channel counts no vector block divides (a searched cell's 44):
        # ONNX Runtime's int8 kernel runs the remainder channels in a scalar loop.
        def narrow(y: Any) -> Any:
            for kernel in (3, 5, 3, 5, 3, 5):
                y = layers.DepthwiseConv2D(kernel, padding="same", activation="relu")(y)
                y = layers.Conv2D(44, 1, activation="relu")(y)
            return y

        return model((28, 28, 44), narrow)
    if name == "hard_swish_chain":

        def hard_swishes(y: Any) -> Any:
            for _ in range(10):
                y = layers.Conv2D(32, 1)(layers.Activation("hard_swish")(y))
            return y

        return model((56, 56, 32), hard_swishes)
    if name == "pool_stack":

        def pools(y: Any) -> Any:
            for _ in range(6):
                avg = layers.AveragePooling2D(3, strides=1, padding="same")(y)
                y = layers.Add()([layers.MaxPooling2D(3, strides=1, padding="same")(y), avg])
            return layers.GlobalAveragePooling2D()(y)

        return model((56, 56, 32), pools)
    if name == "pad_slice":

        def pads(y: Any) -> Any:
            for _ in range(10):
                y = layers.Cropping2D(1)(layers.ZeroPadding2D(1)(y))
                y = layers.Conv2D(32, 1)(y)
            return y

        return model((56, 56, 32), pads)
    if name == "conv1x1_stack":
        return model((28, 28, 128), lambda x: _repeat(x, 6, lambda y: layers.Conv2D(256, 1, activation="relu")(y)))
    if name == "depthwise_stack":
        return model(
            (112, 112, 64),
            lambda x: _repeat(x, 8, lambda y: layers.DepthwiseConv2D(3, padding="same", activation="relu")(y)),
        )
    if name == "dense_stack":
        return model((1024,), lambda x: _repeat(x, 4, lambda y: layers.Dense(1536, activation="relu")(y)))
    if name == "elementwise_chain":

        def swishes(y: Any) -> Any:
            for _ in range(12):
                y = layers.Multiply()([y, layers.Activation("sigmoid")(y)])
                y = layers.Add()([y, y])
            return y

        return model((56, 56, 64), swishes)
    if name == "concat_blocks":

        def dense_block(y: Any) -> Any:
            for _ in range(8):
                new = layers.Conv2D(16, 3, padding="same", activation="relu")(y)
                y = layers.Concatenate()([y, new])
            return y

        return model((28, 28, 32), dense_block)
    if name == "squeeze_excite":

        def se(y: Any) -> Any:
            for _ in range(6):
                s = layers.GlobalAveragePooling2D(keepdims=True)(y)
                s = layers.Conv2D(32, 1, activation="relu")(s)
                s = layers.Conv2D(128, 1, activation="hard_sigmoid")(s)
                y = layers.Multiply()([y, s])
                y = layers.Conv2D(128, 1)(y)
            return y

        return model((28, 28, 128), se)
    if name == "separable_cells":
        # Cells of a searched architecture: a ReLU before every narrow separable convolution
        # (3×3, 5×5, 7×7, channel counts that fill no vector), pooling branches, adds, a concat.
        def cells(y: Any) -> Any:
            for width in (22, 22, 44, 44):
                relu = layers.ReLU()(y)
                left = layers.Add()(
                    [
                        layers.SeparableConv2D(width, 5, padding="same")(relu),
                        layers.SeparableConv2D(width, 7, padding="same")(relu),
                    ]
                )
                pooled = layers.AveragePooling2D(3, strides=1, padding="same")(y)
                right = layers.Add()([pooled, layers.SeparableConv2D(int(pooled.shape[-1]), 3, padding="same")(relu)])
                y = layers.Conv2D(width, 1)(layers.Concatenate()([left, right]))
            return y

        return model((56, 56, 22), cells)
    if name == "dense_block":
        # A densely connected block: batch norm and ReLU before every convolution (nothing to
        # fold them into) and a growing concatenation; quantized, each needs its own requantize.
        def block(y: Any) -> Any:
            for _ in range(6):
                z = layers.Conv2D(64, 1)(layers.ReLU()(layers.BatchNormalization()(y)))
                z = layers.Conv2D(16, 3, padding="same")(layers.ReLU()(layers.BatchNormalization()(z)))
                y = layers.Concatenate()([y, z])
            return y

        return model((28, 28, 64), block)
    if name == "tiny_ops":

        def many(y: Any) -> Any:
            for _ in range(150):
                y = layers.Add()([layers.ReLU()(y), y])
            return y

        return model((16, 16, 16), many)
    raise KeyError(name)


def _repeat(x: Any, times: int, layer: Callable[[Any], Any]) -> Any:
    for _ in range(times):
        x = layer(x)
    return x


SYNTHETIC = (
    "conv3x3_stack",
    "conv1x1_stack",
    "narrow_conv_stack",
    "depthwise_stack",
    "depthwise5_stack",
    "depthwise7_stack",
    "swish_depthwise",
    "swish_depthwise_small",
    "narrow_depthwise",
    "hard_swish_chain",
    "pool_stack",
    "pad_slice",
    "dense_stack",
    "elementwise_chain",
    "concat_blocks",
    "squeeze_excite",
    "separable_cells",
    "dense_block",
    "tiny_ops",
)
# Whole architectures; none of them is one the calibration is later judged on.
ARCHITECTURES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v2_035", "squeezenet", "efficientnet_v2_b0", "xception")
QUICK_SET = ("conv3x3_stack", "narrow_conv_stack", "depthwise_stack", "dense_stack", "elementwise_chain", "tiny_ops")


def build_calibration_model(name: str, seed: int = 0) -> Any:
    """The same weights every time: random, but seeded, so a calibration can be repeated."""
    import keras

    from edgekit.model_zoo import build

    keras.utils.set_random_seed(seed)
    return _synthetic(name) if name in SYNTHETIC else build(name)


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


def time_model(path: Path, engine: str, threads: int, seconds: float) -> float:
    """Median latency (ms) with edgekit's bench loop."""
    from edgekit.bench import BenchSettings, measure
    from edgekit.runtimes import load_runtime

    settings = BenchSettings(runs=None, duration_s=seconds, warmup=5)
    result = measure(lambda: load_runtime(path, engine, threads=threads), settings)
    return float(result["p50_ms"])


@dataclass
class Point:
    model: str
    engine: str
    precision: str
    threads: int
    features: Features
    measured_ms: float


def fit(points: list[Point], prior: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Non-negative least squares on relative error, with a weak pull towards ``prior``, then one
    scale so that the whole networks among ``points`` are right on (geometric) average.

    The synthetic graphs are small and sit in cache; they set what each term costs relative to
    the others, while the overall level is what whole networks show (left to the least squares
    alone, the networks came out 15–25 % slower than predicted on every runtime). Returns the
    coefficients and the 10th/90th percentiles of measured / predicted."""
    from scipy.optimize import nnls

    points = [p for p in points if p.measured_ms > 0]
    # Work in units of the prior so every coefficient is of order one.
    rows = [p.features.vector() * prior / (p.measured_ms / 1000.0) for p in points]
    pull = np.array([LOOSE_TERMS.get(t, PRIOR_WEIGHT) for t in TERMS])
    a = np.vstack([*rows, np.diag(pull)])
    b = np.concatenate([np.ones(len(rows)), pull])
    scaled, _ = nnls(a, b)
    coefficients = scaled * prior
    networks = [
        p.measured_ms / 1000.0 / float(coefficients @ p.features.vector()) for p in points if p.model in ARCHITECTURES
    ]
    if networks:
        coefficients = coefficients * float(np.exp(np.mean(np.log(networks))))
    ratios = [p.measured_ms / 1000.0 / float(coefficients @ p.features.vector()) for p in points]
    return coefficients, float(np.quantile(ratios, 0.1)), float(np.quantile(ratios, 0.9))


def leave_one_out(points: list[Point], prior: np.ndarray) -> dict[str, float]:
    """Each model predicted by a fit made without it: how well the fit holds on a model it has not seen."""
    errors = {}
    for i, point in enumerate(points):
        rest = points[:i] + points[i + 1 :]
        if len(rest) < 2 or point.measured_ms <= 0:
            continue
        coefficients, _, _ = fit(rest, prior)
        predicted_ms = float(coefficients @ point.features.vector()) * 1000.0
        errors[point.model] = round(predicted_ms / point.measured_ms - 1.0, 4)
    return errors


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
            (networks if model in ARCHITECTURES else synthetic).append(abs(error))
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
    from edgekit.host import host_cpu, memory_gb

    cpu = host_cpu()
    rates = cpu.macs_per_cycle()
    isa = cpu.isa
    return DeviceProfile(
        name=name,
        title=f"this machine ({cpu.name})",
        arch=cpu.arch,  # type: ignore[arg-type]
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
    from edgekit.graph import analyze
    from edgekit.host import measure_bandwidth_gbs
    from edgekit.predict import prior_coefficients

    progress("measuring memory bandwidth")
    profile = host_profile_skeleton(name, measure_bandwidth_gbs())
    names = QUICK_SET if quick else (*ARCHITECTURES, *SYNTHETIC)
    points: list[Point] = []
    for model_name in names:
        progress(f"building {model_name}")
        model = build_calibration_model(model_name)
        for engine in engines:
            for precision in precisions:
                artifact = export(model, model_name, engine, precision, workdir)
                features = Features.from_graph(analyze(artifact, engine))
                for count in threads:
                    measured = time_model(artifact, engine, count, seconds)
                    progress(f"{model_name} · {engine} · {precision} · {count} thr: {measured:.2f} ms")
                    points.append(Point(model_name, engine, precision, count, features, measured))
    fits = []
    for engine in engines:
        for precision in precisions:
            for count in threads:
                chosen = [p for p in points if (p.engine, p.precision, p.threads) == (engine, precision, count)]
                prior = prior_coefficients(profile, "cpu", precision, profile.cpu.clusters[0].clock_ghz)
                if count > 1:
                    prior = prior * (0.15 + 0.85 / count)
                coefficients, low, high = fit(chosen, prior)
                fits.append(
                    CalibrationFit(
                        engine=engine,  # type: ignore[arg-type]
                        precision=precision,  # type: ignore[arg-type]
                        threads=count,
                        coefficients={t: float(c) for t, c in zip(TERMS, coefficients, strict=True)},
                        residual_low=round(min(low, 0.95), 4),
                        residual_high=round(max(high, 1.05), 4),
                        points={p.model: round(p.measured_ms, 4) for p in chosen},
                        leave_one_out_errors=leave_one_out(chosen, prior),
                    )
                )
    calibration = Calibration(measured_on=dt.date.today().isoformat(), command=command, fits=fits)
    return profile.model_copy(update={"calibration": calibration})


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
