"""Graph analysis: MACs, parameters, bytes and activation memory, the same for every format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ConfigError, InputNotFoundError, ModelError
from edgekit.predict.graph import OpClass, analyze

# A conv (8 filters, 3×3, 'same') on 8×8×1 and a dense layer to 10: MACs by hand.
CONV_MACS = 8 * 8 * 8 * 3 * 3 * 1
DENSE_MACS = 8 * 8 * 8 * 10
PARAMS = (3 * 3 * 1 * 8 + 8) + (512 * 10 + 10)


@pytest.fixture(scope="module")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite
    from edgekit.converters.to_onnx import keras_to_onnx, quantize_onnx
    from edgekit.converters.to_openvino import to_openvino
    from edgekit.data import Dataset
    from edgekit.formats import Precision

    folder = tmp_path_factory.mktemp("graphs")
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    calibration = Dataset(
        {model.inputs[0].name: np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 1)).astype("float32")}, origin="r"
    )
    paths = {
        "tflite": keras_to_tflite(model, folder / "m.tflite", TFLiteOptions(Precision.FP32)),
        "tflite_int8": keras_to_tflite(
            model, folder / "m_int8.tflite", TFLiteOptions(Precision.INT8, calibration=calibration)
        ),
        "onnx": keras_to_onnx(model, folder / "m.onnx"),
    }
    paths["onnx_int8"] = quantize_onnx(
        paths["onnx"], folder / "m_int8.onnx", Precision.INT8, calibration, keep_head_float=False
    )
    paths["openvino"] = to_openvino(paths["onnx"], folder / "m.xml", Precision.FP32, None, keep_head_float=False)
    return paths


@pytest.mark.parametrize("kind", ["tflite", "tflite_int8", "onnx", "onnx_int8", "openvino"])
def test_macs_and_parameters_match_the_hand_count(small_models: dict[str, Path], kind: str) -> None:
    graph = analyze(small_models[kind])
    totals = graph.by_class()
    assert totals[OpClass.CONV].macs == CONV_MACS
    assert totals[OpClass.MATMUL].macs == DENSE_MACS
    assert graph.macs == CONV_MACS + DENSE_MACS
    assert graph.params == pytest.approx(PARAMS, rel=0.01)
    assert graph.unknown_kinds == []
    assert graph.peak_activation_bytes > 0
    assert graph.precision == ("int8" if kind.endswith("int8") else "fp32")


def test_int8_weights_take_a_quarter_of_the_bytes(small_models: dict[str, Path]) -> None:
    fp32 = analyze(small_models["tflite"]).weight_bytes
    int8 = analyze(small_models["tflite_int8"]).weight_bytes
    assert int8 < fp32 * 0.4
    assert analyze(small_models["onnx_int8"]).weight_bytes < analyze(small_models["onnx"]).weight_bytes * 0.4


def test_peak_activation_is_the_largest_live_set(small_models: dict[str, Path]) -> None:
    graph = analyze(small_models["tflite"])
    conv_out = 8 * 8 * 8 * 4
    # At the conv its input (256 B) and output (2 KB) are live; at the flatten its input and output
    # (2 KB each); the dense layer's output is 40 B. The largest set is the flatten's.
    assert 2 * conv_out <= graph.peak_activation_bytes <= 2 * conv_out + 64


def _onnx_with_mystery_op(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Mystery", ["r"], ["m"], domain="com.example"),
            helper.make_node("Relu", ["m"], ["y"]),
        ],
        "mystery",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(path))
    return path


def test_an_unknown_operator_is_counted_as_unknown_cost_not_a_crash(tmp_path: Path) -> None:
    graph = analyze(_onnx_with_mystery_op(tmp_path / "mystery.onnx"))
    assert graph.unknown_kinds == ["com.example.Mystery"]
    assert len(graph.ops) == 3
    assert graph.to_dict()["unknown_cost"] == ["com.example.Mystery"]


@pytest.mark.parametrize("kind", ["onnx", "onnx_int8"])
def test_onnx_runtime_graph_is_priced_as_it_runs(small_models: dict[str, Path], kind: str) -> None:
    """For ONNX Runtime edgekit prices the graph ORT optimizes, shapes from one profiled run: the
    hand count's work, in fused kernels (QLinearConv, a blocked-layout conv whose channels are
    padded to its block, or a float convolution between (de)quantize nodes)."""
    written = analyze(small_models[kind])
    as_run = analyze(small_models[kind], "onnxruntime")
    assert as_run.by_class()[OpClass.MATMUL].macs == DENSE_MACS
    assert as_run.by_class()[OpClass.CONV].macs >= CONV_MACS
    assert as_run.precision == written.precision
    assert as_run.unknown_kinds == []
    kinds = {op.kind for op in as_run.ops}
    if kind == "onnx":
        assert any(k.startswith("com.microsoft.") for k in kinds)  # ORT's own fused or blocked kernels
    else:
        assert len(as_run.ops) < len(written.ops)  # (de)quantizers fused into int8 kernels
        run_in_float = sum(op.macs for op in as_run.ops if op.float_path)
        in_int8 = sum(op.macs for op in as_run.ops if op.op_class.value in ("conv", "matmul") and not op.float_path)
        assert run_in_float + in_int8 == as_run.macs


def test_a_model_onnx_runtime_cannot_run_is_priced_as_written(tmp_path: Path) -> None:
    graph = analyze(_onnx_with_mystery_op(tmp_path / "mystery.onnx"), "onnxruntime")
    assert graph.unknown_kinds == ["com.example.Mystery"]


def test_analyze_cli_names_unknown_cost(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = _onnx_with_mystery_op(tmp_path / "mystery.onnx")
    result = cli("analyze", str(model))
    assert result.exit_code == 0, result.output
    assert "unknown cost: com.example.Mystery" in result.output
    data = json.loads(cli("analyze", str(model), "--json").stdout)
    assert data["unknown_cost"] == ["com.example.Mystery"]


def test_analyze_cli_table_and_json(cli, small_models: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    result = cli("analyze", str(small_models["tflite"]))
    assert result.exit_code == 0, result.output
    assert "CONV_2D" in result.output and "FULLY_CONNECTED" in result.output
    data = json.loads(cli("analyze", str(small_models["tflite"]), "--json", "--ops").stdout)
    assert data["macs"] == CONV_MACS + DENSE_MACS
    assert {op["kind"] for op in data["ops"]} >= {"CONV_2D", "FULLY_CONNECTED"}


def test_analyze_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        analyze(tmp_path / "none.tflite")
    (tmp_path / "m.keras").write_bytes(b"x")
    with pytest.raises(ConfigError, match="convert the model first"):
        analyze(tmp_path / "m.keras")
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError):
        analyze(tmp_path / "broken.tflite")
    (tmp_path / "broken.onnx").write_bytes(b"x\n")  # protobuf reads this as an empty model
    for engine in (None, "onnxruntime"):
        with pytest.raises(ModelError, match="no operators"):
            analyze(tmp_path / "broken.onnx", engine)


def test_analyze_cli_reports_the_xnnpack_partitions(cli, small_models: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    result = cli("analyze", str(small_models["tflite_int8"]))
    assert result.exit_code == 0, result.stderr
    graph = analyze(small_models["tflite_int8"])
    line = next(line for line in result.stdout.splitlines() if line.startswith("XNNPACK"))
    assert f"{graph.partitions} partition" in line
    for kind in {op.kind for op in graph.ops if not op.delegated}:
        assert kind in line


def test_convnext_style_layers_are_priced_at_the_size_they_run(tmp_path: Path) -> None:
    """ConvNeXt's two layer kinds: a Dense on a 4-D tensor (under a dynamic batch TFLite computes
    its reshape while it runs, so its tensors keep a placeholder size when allocated) and a 7×7
    convolution grouped one channel per group (priced as the depthwise convolution it is)."""
    import keras

    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite
    from edgekit.formats import Precision
    from edgekit.predict.graph.features import Features

    inputs = keras.Input((8, 8, 16))
    x = keras.layers.Conv2D(16, 7, padding="same", groups=16)(inputs)
    outputs = keras.layers.Dense(32)(x)
    path = keras_to_tflite(keras.Model(inputs, outputs), tmp_path / "m.tflite", TFLiteOptions(Precision.FP32))
    graph = analyze(path)
    assert {op.kind for op in graph.ops} >= {"SHAPE", "FULLY_CONNECTED", "CONV_2D"}
    totals = graph.by_class()
    assert totals[OpClass.MATMUL].macs == 8 * 8 * 16 * 32
    assert totals[OpClass.DEPTHWISE].macs == 8 * 8 * 16 * 49
    features = Features.from_graph(graph)
    assert features.large_depthwise_macs == 8 * 8 * 16 * 49
    # The Dense runs at each of 64 positions: a GEMM, priced with the convolutions, not as a
    # matrix-vector product.
    assert features.matmul_macs == 0
    assert features.conv_macs == 8 * 8 * 16 * 32


@pytest.mark.parametrize(("rows", "gemm"), [(1, False), (4, False), (64, True)])
def test_a_matmul_over_many_rows_is_priced_as_a_gemm(tmp_path: Path, rows: int, gemm: bool) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.predict.graph.features import Features

    weights = numpy_helper.from_array(np.ones((16, 8), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, 8])],
        initializer=[weights],
    )
    path = tmp_path / "dense.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    features = Features.from_graph(analyze(path))
    assert (features.conv_macs, features.matmul_macs) == ((rows * 16 * 8, 0) if gemm else (0, rows * 16 * 8))


@pytest.fixture(scope="module")
def quantized_pools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The calibration graph whose pools a quantized graph keeps on 8-bit data (three max pools of
    a concatenation, three average pools feeding a convolution, each 28×28×48), fp32 and int8."""
    from edgekit.predict.calibrate.run import build_calibration_model, export

    folder = tmp_path_factory.mktemp("pools")
    model = build_calibration_model("quantized_pools")
    return {p: export(model, "quantized_pools", "onnxruntime", p, folder) for p in ("fp32", "int8")}


def test_onnx_runtime_8bit_pools_are_priced_per_output_and_float_pools_per_element(
    quantized_pools: dict[str, Path],
) -> None:
    """ONNX Runtime runs a quantized graph's NCHW max pools and QLinearAveragePools through scalar
    loops, an order of magnitude dearer than its float or channels-last pools: they are a term of
    their own, priced by output. Five of the six pools run so; the last average pool, between two
    int8 convolutions, runs channels-last and stays ordinary pooling work, as do the float graph's."""
    from edgekit.predict.graph.features import Features

    quantized = Features.from_graph(analyze(quantized_pools["int8"], "onnxruntime"))
    assert quantized.scalar_pool_outputs == 5 * 28 * 28 * 48
    assert quantized.pool_ops >= 28 * 28 * 48
    plain = Features.from_graph(analyze(quantized_pools["fp32"], "onnxruntime"))
    assert plain.scalar_pool_outputs == 0
    assert plain.pool_ops >= 6 * 28 * 28 * 48


def test_a_calibration_reads_every_operator_time_onnx_runtime_measured(quantized_pools: dict[str, Path]) -> None:
    """With a timing budget, every operator ORT ran carries the median time its profiler measured
    (what a calibration prices the terms on); without one, none does."""
    timed = analyze(quantized_pools["int8"], "onnxruntime", timing_budget_s=0.2)
    assert timed.ops and all(op.measured_s is not None and op.measured_s >= 0 for op in timed.ops)
    convolutions = [op.measured_s or 0.0 for op in timed.ops if op.op_class is OpClass.CONV]
    assert sum(convolutions) > 0
    assert all(op.measured_s is None for op in analyze(quantized_pools["int8"], "onnxruntime").ops)
