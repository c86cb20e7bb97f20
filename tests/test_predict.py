"""Prediction per device profile: latency with a band, memory fit, delegate fallback, and the
`bench --device` / `profiles calibrate` commands around it. Accuracy figures live in
benchmarks/predict.py; these tests check behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ConfigError, UnknownNameError
from edgekit.predict import leave_one_reference_out, predict
from edgekit.predict.graph import analyze
from edgekit.predict.profiles import load_profile

from .conftest import run_edgekit

PREDICTED_KEYS = {"latency_ms", "low_ms", "high_ms", "fits_memory", "unsupported_ops", "basis"}


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small classifier with a HARD_SWISH (not on the GPU delegate's operator list)."""
    import keras

    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite
    from edgekit.formats import Precision

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    folder = tmp_path_factory.mktemp("predict")
    return keras_to_tflite(keras.Model(inputs, outputs), folder / "small.tflite", TFLiteOptions(Precision.FP32))


@pytest.mark.parametrize("device", ["rpi4", "rpi5", "pixel4", "x86-cpu", "x86-gpu"])
def test_every_profile_predicts_a_latency_with_a_band(tflite_model: Path, device: str) -> None:
    prediction = predict(analyze(tflite_model), load_profile(device), engine="tflite")
    assert 0 < prediction.low_ms < prediction.latency_ms < prediction.high_ms
    assert prediction.fits_memory
    assert prediction.basis
    assert prediction.flops_baseline_ms > 0
    assert PREDICTED_KEYS <= set(prediction.to_dict())


def test_more_threads_predict_faster_and_too_many_are_refused(tflite_model: Path) -> None:
    graph, rpi4 = analyze(tflite_model), load_profile("rpi4")
    one = predict(graph, rpi4, engine="tflite", threads=1)
    four = predict(graph, rpi4, engine="tflite", threads=4)
    assert four.latency_ms < one.latency_ms
    with pytest.raises(ConfigError, match="more than rpi4 has cores"):
        predict(graph, rpi4, engine="tflite", threads=5)


def test_references_drive_the_estimate(tflite_model: Path) -> None:
    prediction = predict(analyze(tflite_model), load_profile("pixel4"), engine="tflite")
    assert "published cpu measurements" in prediction.basis
    uncalibrated = predict(analyze(tflite_model), load_profile("x86-cpu"), engine="tflite")
    assert "default efficiencies" in uncalibrated.basis
    borrowed = predict(analyze(tflite_model), load_profile("rpi5"), engine="tflite")
    assert "of pixel4 (same cores)" in borrowed.basis


def test_rpi5_fits_its_own_ncnn_references_and_borrows_only_for_tflite(tflite_model: Path) -> None:
    from edgekit.predict.cost.fit import arithmetic_of, fit_references

    rpi5 = load_profile("rpi5")
    # ncnn ran the fp32 models in fp16 on the A76: those rows form a group of their own, priced at the
    # fp16 rate, apart from the int8 rows.
    fp32_rows = [r for r in rpi5.references if r.precision == "fp32"]
    assert fp32_rows and {arithmetic_of(r) for r in fp32_rows} == {"fp16"}
    fit = fit_references(rpi5, rpi5.references, "cpu")
    assert fit is not None and set(fit.scales) == {("ncnn", "fp16"), ("ncnn", "int8")}
    assert {r.threads for r in rpi5.references} == {1, 4}  # so the parallel fraction is the board's own
    graph = analyze(tflite_model)
    assert "of pixel4 (same cores)" in predict(graph, rpi5, engine="tflite").basis
    own = predict(graph, rpi5, engine="onnxruntime")  # the lender has no ONNX Runtime references either
    assert "pixel4" not in own.basis and "ncnn references" in own.basis


def test_gpu_delegate_names_the_operators_it_cannot_run(tflite_model: Path) -> None:
    graph = analyze(tflite_model)
    gpu = predict(graph, load_profile("pixel4"), engine="tflite", runtime="tflite-gpu")
    assert "HARD_SWISH" in gpu.unsupported_ops
    assert gpu.fallback_ms > 0
    assert gpu.processor == "gpu" and gpu.threads is None
    cpu = predict(graph, load_profile("pixel4"), engine="tflite")
    assert cpu.unsupported_ops == [] and cpu.fallback_ms == 0


def test_memory_fit_is_weights_plus_arena_plus_runtime(tflite_model: Path) -> None:
    graph = analyze(tflite_model)
    profile = load_profile("rpi4")
    tiny = profile.model_copy(update={"memory": profile.memory.model_copy(update={"ram_gb": 0.001})})
    prediction = predict(graph, tiny, engine="tflite")
    assert not prediction.fits_memory
    memory = prediction.memory
    assert memory["need"] == pytest.approx(memory["weights"] + memory["activations"] + memory["runtime"])


def test_leave_one_out_predicts_every_reference_without_itself() -> None:
    profile = load_profile("pixel4")
    rows = leave_one_reference_out(profile, "cpu")
    assert len(rows) == len([r for r in profile.references if r.processor == "cpu"])
    assert all(r["predicted_ms"] > 0 for r in rows)
    assert np.median([abs(r["error"]) for r in rows]) < 1.0  # sane, not the benchmark's goal


def test_unknown_device_suggests_the_closest(cli, tflite_model: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("bench", str(tflite_model), "--device", "rpi-4")
    assert result.exit_code == UnknownNameError.exit_code
    assert "did you mean 'rpi4'" in result.stderr


def test_host_before_calibration_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEKIT_PROFILE_DIR", str(tmp_path))
    with pytest.raises(UnknownNameError, match="edgekit profiles calibrate --name host"):
        load_profile("host")


def test_bench_device_json_has_prediction_per_device(cli, tflite_model: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("bench", str(tflite_model), "--device", "rpi4,pixel4:tflite-gpu", "--threads", "2", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert [r["device"] for r in rows] == ["rpi4", "pixel4"]
    for row in rows:
        assert row["measured"] is None  # neither is this machine: predicted only
        assert PREDICTED_KEYS <= set(row["predicted"])
    assert rows[1]["predicted"]["unsupported_ops"] == ["HARD_SWISH", "MEAN"]  # not on the GPU list


def test_bench_device_thread_count_above_the_cores_is_refused(cli, tflite_model: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("bench", str(tflite_model), "--device", "rpi4", "--threads", "8")
    assert result.exit_code == ConfigError.exit_code
    assert "more than rpi4 has cores (4)" in result.stderr


def test_on_the_device_itself_bench_measures_and_predicts(tflite_model: Path) -> None:
    # A Raspberry Pi names itself in /proc/device-tree/model; EDGEKIT_MACHINE_NAME stands in for it.
    done = run_edgekit(
        "bench", str(tflite_model), "--device", "rpi4", "--threads", "1", "--runs", "20", "--json",
        env_extra={"EDGEKIT_MACHINE_NAME": "Raspberry Pi 4 Model B Rev 1.4"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)["results"][0]
    assert row["device"] == "rpi4"
    assert row["measured"]["p50_ms"] > 0
    assert PREDICTED_KEYS <= set(row["predicted"])


def test_calibrate_then_predict_this_machine(tflite_model: Path, tmp_path: Path) -> None:
    env = {"EDGEKIT_PROFILE_DIR": str(tmp_path / "profiles")}
    done = run_edgekit(
        "profiles", "calibrate", "--quick", "--runtime", "tflite", "--precision", "fp32", "--threads", "1",
        "--seconds", "0.3", env_extra=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "profiles" / "host.yaml").exists()
    # It ends by saying how well the fit holds, and no converter's traceback reached the terminal.
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("fit: each synthetic graph likewise: median ")  # --quick: synthetic graphs only
    assert "Traceback" not in done.stderr
    again = run_edgekit("profiles", "calibrate", "--quick", env_extra=env)
    assert again.returncode == 7 and "--force" in again.stderr  # nothing overwritten silently
    listed = run_edgekit("profiles", "list", "--json", env_extra=env)
    assert "host" in [p["name"] for p in json.loads(listed.stdout)["profiles"]]
    bench = run_edgekit(
        "bench", str(tflite_model), "--device", "host", "--threads", "1", "--runs", "20", "--json", env_extra=env
    )
    assert bench.returncode == 0, bench.stderr
    row = json.loads(bench.stdout)["results"][0]
    assert row["measured"]["p50_ms"] > 0  # host is this machine: measured beside predicted
    assert row["predicted"]["basis"].startswith("calibrated on this machine")


def test_a_calibration_times_each_model_in_rounds_and_a_slow_spell_does_not_bend_it(monkeypatch) -> None:
    """Each model and thread count is timed in windows a round apart (its seconds split
    between them, an ONNX Runtime model's operators timed once in the first round); a window in
    which the machine ran at half speed does not make that model's latency."""
    from edgekit.predict.calibrate import run
    from edgekit.predict.graph.features import TERMS, Features

    extra = {"precision": "fp32", "unknown_ops": 0, "flops": 0.0, "weight_bytes": 0, "peak_activation_bytes": 0}
    features = Features.from_dict({**dict.fromkeys(TERMS, 1.0), **extra})
    timed: list[tuple[str, int, float]] = []
    profiled: list[tuple[str, int, float]] = []

    def time_model(path: Path, engine: str, threads: int, seconds: float) -> float:
        timed.append((path.name, threads, seconds))
        slow_spell = path.name == "b.onnx" and len([t for t in timed if t[0] == "b.onnx"]) == 1
        return 10.0 / threads * (2.0 if slow_spell else 1.0)

    def time_operators(path: Path, engine: str, threads: int, seconds: float) -> run.OperatorTimes | None:
        profiled.append((path.name, threads, seconds))
        return run.OperatorTimes(features, ((features.vector(), 0.001),)) if engine == "onnxruntime" else None

    monkeypatch.setattr(run, "time_model", time_model)
    monkeypatch.setattr(run, "time_operators", time_operators)
    models = [
        run.Timed("a", "tflite", "fp32", Path("a.tflite"), features, True),
        run.Timed("b", "onnxruntime", "fp32", Path("b.onnx"), None, True),
    ]
    points = run.time_all(models, [1, 2], 1.5, lambda _line: None)
    assert [(p.model, p.threads, p.measured_ms) for p in points] == [
        ("a", 1, 10.0), ("a", 2, 5.0), ("b", 1, 10.0), ("b", 2, 5.0)
    ]  # fmt: skip
    assert len(timed) == 4 * run.CALIBRATION_ROUNDS
    assert sum(s for name, _, s in timed if name == "a.tflite") == pytest.approx(2 * 1.5)
    assert sorted(profiled) == [("a.tflite", 1, 0.0), ("a.tflite", 2, 0.0), ("b.onnx", 1, pytest.approx(0.45)),
                                ("b.onnx", 2, pytest.approx(0.45))]  # fmt: skip
    assert points[2].operators and points[2].features == features and not points[0].operators


def test_leave_one_out_of_a_calibration_predicts_each_model_without_it() -> None:
    from edgekit.predict.cost.fit import Point, leave_one_out
    from edgekit.predict.graph.features import TERMS, Features

    rng = np.random.default_rng(0)
    price = rng.uniform(0.5, 2.0, len(TERMS)) * 1e-9
    points = []
    for i in range(12):
        amounts = rng.uniform(1e6, 1e8, len(TERMS))
        extra = {"precision": "fp32", "unknown_ops": 0, "flops": 0.0, "weight_bytes": 0, "peak_activation_bytes": 0}
        features = Features.from_dict({**dict(zip(TERMS, amounts, strict=True)), **extra})
        points.append(Point(f"m{i}", "tflite", "fp32", 1, features, float(price @ amounts) * 1000))
    errors = leave_one_out(points, price)
    assert set(errors) == {p.model for p in points}
    assert max(abs(e) for e in errors.values()) < 0.05  # an exact linear world is predicted from the rest


def test_operator_times_price_the_terms_and_the_networks_set_the_level() -> None:
    """A world where ONNX Runtime's profiler times each operator at its kernel's price, while a
    whole graph takes 1.15 × its operators' sum (the executor's work between them, which no
    operator's time holds), and the prior is off by up to 3× either way: fitted on the operators,
    with the networks setting the level, graphs the calibration never saw are predicted exactly."""
    from edgekit.predict.cost.fit import Point, fit
    from edgekit.predict.graph.features import TERMS, Features

    rng = np.random.default_rng(1)
    price = rng.uniform(0.5, 2.0, len(TERMS)) * 1e-10
    ops_index = TERMS.index("ops")
    price[ops_index] = 1e-6
    extra = {"precision": "int8", "unknown_ops": 0, "flops": 0.0, "weight_bytes": 0, "peak_activation_bytes": 0}

    def graph(count: int, size: float) -> tuple[Features, tuple[tuple[np.ndarray, float], ...], float]:
        """A graph's features, its operators with their profiled times, and its whole time (ms)."""
        operators = []
        for _ in range(count):
            x = np.zeros(len(TERMS))
            chosen = rng.choice([i for i in range(len(TERMS)) if i != ops_index], size=2, replace=False)
            x[chosen] = rng.uniform(0.1, 1.0, 2) * size
            x[ops_index] = 1.0
            operators.append((x, float(price @ x)))
        total = np.sum([x for x, _ in operators], axis=0)
        features = Features.from_dict({**dict(zip(TERMS, total, strict=True)), **extra})
        return features, tuple(operators), 1.15 * sum(t for _, t in operators) * 1000

    points = []
    for i in range(12):
        features, operators, measured = graph(int(rng.integers(20, 200)), 10 ** rng.uniform(4, 7))
        points.append(Point(f"m{i}", "onnxruntime", "int8", 1, features, measured, i < 6, operators))
    coefficients, low, high = fit(points, price * rng.uniform(0.3, 3.0, len(TERMS)))
    assert low == pytest.approx(1.0, abs=0.01) and high == pytest.approx(1.0, abs=0.01)
    for _ in range(3):
        unseen, _, measured = graph(150, 1e5)
        assert float(coefficients @ unseen.vector()) * 1000 == pytest.approx(measured, rel=0.01)


def test_a_calibrations_band_is_a_prediction_interval_from_its_networks() -> None:
    """Six networks each predicted by a fit without it say where the next one falls: wider than
    their own spread (six values' 10th–90th percentiles are nearly their extremes), centred where
    they err, and nothing to widen when every one was predicted exactly."""
    from edgekit.predict.cost.fit import prediction_interval

    ratios = [0.92, 1.08, 1.0, 0.96, 1.04, 1.0]
    low, high = prediction_interval(ratios)
    assert low < min(ratios) and high > max(ratios)
    assert low * high == pytest.approx(float(np.prod(ratios)) ** (2 / len(ratios)))
    slower = prediction_interval([r * 1.1 for r in ratios])
    assert slower == pytest.approx((low * 1.1, high * 1.1))
    assert prediction_interval([1.0] * 6) == pytest.approx((1.0, 1.0))


def test_a_delegate_for_another_format_is_one_line_before_any_work(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from .test_graph import _onnx_with_mystery_op

    model = _onnx_with_mystery_op(tmp_path / "m.onnx")
    result = cli("bench", str(model), "--device", "pixel4:tflite-gpu")
    assert result.exit_code == ConfigError.exit_code
    assert result.stderr.strip().splitlines() == [
        "edgekit: error: runtime tflite-gpu on pixel4 runs tflite models, not onnxruntime; "
        "give it a model in the tflite format"
    ]


@pytest.fixture(scope="module")
def depthwise_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 7×7 depthwise convolution on 22 channels: past XNNPACK's single-pass kernels, and a
    channel count no blocked layout of ONNX Runtime's takes."""
    import keras

    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite
    from edgekit.converters.to_onnx import keras_to_onnx
    from edgekit.formats import Precision

    inputs = keras.Input((16, 16, 22))
    model = keras.Model(inputs, keras.layers.DepthwiseConv2D(7, padding="same")(inputs))
    folder = tmp_path_factory.mktemp("depthwise")
    return {
        "tflite": keras_to_tflite(model, folder / "dw7.tflite", TFLiteOptions(Precision.FP32)),
        "onnx": keras_to_onnx(model, folder / "dw7.onnx"),
    }


def test_large_depthwise_kernels_are_a_term_of_their_own(depthwise_models: dict[str, Path]) -> None:
    from edgekit.predict.graph.features import Features

    features = Features.from_graph(analyze(depthwise_models["tflite"], "tflite"))
    assert features.large_depthwise_macs == 16 * 16 * 22 * 49
    assert features.depthwise_macs == 0


def test_onnx_runtime_generic_depthwise_is_priced_by_mac_and_channel(depthwise_models: dict[str, Path]) -> None:
    from edgekit.predict.graph.features import Features

    features = Features.from_graph(analyze(depthwise_models["onnx"], "onnxruntime"))
    assert features.generic_depthwise_macs == 16 * 16 * 22 * 49
    assert features.generic_depthwise_channels == 22
    assert features.depthwise_macs == features.large_depthwise_macs == 0


def test_only_computing_operators_left_by_the_delegate_are_fallbacks() -> None:
    from edgekit.predict.graph import OpClass, OpCost
    from edgekit.predict.graph.features import features_of_ops

    def op(kind: str, op_class: OpClass, family: str) -> OpCost:
        return OpCost(kind, op_class, 100, 0, 400, 400, (1, 10, 10), delegated=False, family=family)

    features = features_of_ops(
        [op("CONCATENATION", OpClass.MEMORY, "memory"), op("AVERAGE_POOL_2D", OpClass.POOL, "pool")], "fp32"
    )
    assert features.fallback_ops == 100  # the pooling; the concatenation is a copy either way
    assert features.memory_ops == 100


def test_depthwise_channels_past_the_last_full_block_are_a_term_of_their_own() -> None:
    from edgekit.predict.graph import OpClass, OpCost
    from edgekit.predict.graph.features import features_of_ops

    def depthwise(channels: int) -> OpCost:
        # 3×3 on 8×8 pixels: 9 MACs per output element
        return OpCost("DEPTHWISE_CONV_2D", OpClass.DEPTHWISE, 9 * 64 * channels, 0, 1, 1, (1, 8, 8, channels),
                      family="depthwise", channels=channels)  # fmt: skip

    features = features_of_ops([depthwise(48), depthwise(44)], "int8")
    assert features.depthwise_tail_macs == 9 * 64 * 12  # 44 = 2 × 16 + 12
    assert features.depthwise_macs == 9 * 64 * (48 + 32)


def test_a_model_outside_the_references_gets_a_wider_band_and_says_why(tflite_model: Path) -> None:
    from edgekit.predict.cost.coverage import WIDENING, extrapolations
    from edgekit.predict.cost.fit import band_from_references
    from edgekit.predict.profiles.references import reference_features

    pixel4 = load_profile("pixel4")
    small = predict(analyze(tflite_model), pixel4, engine="tflite", threads=1)
    assert "extrapolates" in small.basis and "smaller than the smallest reference" in small.basis
    low, high = band_from_references(pixel4, "cpu", "tflite")
    assert small.high_ms / small.latency_ms == pytest.approx(high * WIDENING[1])
    # One of the references' own architectures is inside what they cover.
    assert extrapolations(pixel4, "cpu", "fp32", 1, reference_features("mobilenet_v2", "fp32")) == []


def test_a_calibration_raises_a_reported_clock_its_measurements_prove_too_low() -> None:
    """A VM reporting its base clock: a run faster than peak at that clock proves a higher one,
    and the compute floor then sits below the measurement instead of above it."""
    from edgekit.predict.calibrate.clock import with_proven_clock
    from edgekit.predict.cost.fit import Point
    from edgekit.predict.cost.prior import macs_per_cycle
    from edgekit.predict.graph.features import TERMS, Features

    profile = load_profile("x86-cpu")
    reported = profile.cpu.clusters[0].clock_ghz
    extra = {"precision": "fp32", "unknown_ops": 0, "flops": 0.0, "weight_bytes": 0, "peak_activation_bytes": 0}
    macs = 1e9
    features = Features.from_dict({**dict.fromkeys(TERMS, 0.0), "conv_macs": macs, **extra})
    at_reported_peak_ms = macs / (macs_per_cycle(profile, "fp32") * reported * 1e9) * 1000
    slow = [Point("slow", "tflite", "fp32", 1, features, at_reported_peak_ms * 2)]
    assert with_proven_clock(profile, slow) is profile  # nothing proves more than what is reported

    fast = [*slow, Point("fast", "tflite", "fp32", 1, features, at_reported_peak_ms / 1.2)]
    raised = with_proven_clock(profile, fast)
    assert raised.cpu.clusters[0].clock_ghz == pytest.approx(reported * 1.2, rel=1e-3)
    assert "clock raised from the reported" in raised.cpu.source and "fast (tflite fp32" in raised.cpu.source


def test_a_calibrated_prediction_says_where_it_extrapolates() -> None:
    """A model whose time rests on a term no calibration model exercised, or that runs far
    longer than any of them, is predicted by extrapolation: the basis says so."""
    from edgekit.predict.cost.coverage import calibration_extrapolations, term_shares
    from edgekit.predict.graph.features import TERMS, Features
    from edgekit.predict.profiles import CalibrationFit

    extra = {"precision": "fp32", "unknown_ops": 0, "flops": 0.0, "weight_bytes": 0, "peak_activation_bytes": 0}

    def model(**amounts: float) -> Features:
        return Features.from_dict({**dict.fromkeys(TERMS, 0.0), **amounts, **extra})

    coefficients = {t: 1e-9 for t in TERMS}
    calibration = [model(conv_macs=2e6, ops=1e5), model(matmul_macs=1e6, conv_macs=1e6)]
    shares = term_shares(np.array(list(coefficients.values())), calibration)
    fit = CalibrationFit(
        engine="tflite", precision="fp32", threads=1, coefficients=coefficients, residual_low=0.9,
        residual_high=1.1, points={"a": 2.1, "b": 2.0}, term_shares=shares,
    )  # fmt: skip
    assert calibration_extrapolations(fit, model(conv_macs=1.5e6, matmul_macs=0.5e6)) == []
    (found,) = calibration_extrapolations(fit, model(conv_macs=1e6, large_depthwise_macs=1e6))
    assert found == "50% of its time is large_depthwise_macs, at most 0% in any calibration model"
    (found,) = calibration_extrapolations(fit, model(conv_macs=2e7))
    assert found == "9.5× the slowest calibration model"
