"""Keras or TFLite → ONNX with tf2onnx, and ONNX quantization with ONNX Runtime's tools.

int8 is static QDQ quantization (per-channel weights, int8 activations) calibrated on the
user's data; ``dynamic`` is int8 weights with activations quantized at run time.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import Dataset
from edgekit.errors import ConversionError
from edgekit.foreign import ORT_QUANTIZE, TF2ONNX_CONVERT, mapped
from edgekit.formats import Precision
from edgekit.quiet import quiet_loggers, quiet_stdout

OPSET = 17
# tf2onnx logs a traceback at WARNING when an optional optimizer pass (the transpose optimizer on
# some graphs) fails; the conversion continues without that pass.
TF2ONNX_LOGGERS = ("tf2onnx",)


# Garbage the optimizer passes may leave before a collection runs: a full collection in a process
# holding TensorFlow takes a noticeable fraction of a second, so not before every pass of every
# small graph, only once the copies have grown this much.
COLLECT_AFTER_BYTES = 256 * 1024 * 1024


def collecting_optimizers() -> dict[str, Callable[[], Any]]:
    """tf2onnx's optimizer passes, each started after a garbage collection when memory grew.

    tf2onnx deep-copies the whole graph, weights included, before every pass so that it can fall
    back when one fails; the copies are cyclic, and the collector rarely runs a full collection
    in a process that holds TensorFlow's many long-lived objects, so they pile up: converting
    Xception peaked at 7.0 GB, and at 2.4 GB (TensorFlow's own graph optimisation) with a
    collection before each pass. Same passes, same order, same graph."""
    import psutil
    from tf2onnx.optimizer import _get_optimizers

    process = psutil.Process()
    collected_at = [process.memory_info().rss]

    def collected(factory: Callable[[], Any]) -> Callable[[], Any]:
        def make() -> Any:
            if process.memory_info().rss > collected_at[0] + COLLECT_AFTER_BYTES:
                gc.collect()
                collected_at[0] = process.memory_info().rss
            return factory()

        return make

    return OrderedDict((name, collected(factory)) for name, factory in _get_optimizers().items())


def keras_to_onnx(model: Any, out: Path) -> Path:
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec((None, *tuple(t.shape[1:])), t.dtype, name=t.name.split(":")[0]) for t in model.inputs]
    with mapped(TF2ONNX_CONVERT, "Keras → ONNX conversion failed"), quiet_stdout(), quiet_loggers(*TF2ONNX_LOGGERS):
        tf2onnx.convert.from_keras(
            model, input_signature=signature, opset=OPSET, output_path=str(out), optimizers=collecting_optimizers()
        )
    return Path(out)


def tflite_to_onnx(source: Path, out: Path) -> Path:
    import tf2onnx

    with mapped(TF2ONNX_CONVERT, "TFLite → ONNX conversion failed"), quiet_stdout(), quiet_loggers(*TF2ONNX_LOGGERS):
        tf2onnx.convert.from_tflite(str(source), opset=OPSET, output_path=str(out))
    return Path(out)


def fixed_input_copy(source: Path, shapes: dict[str, tuple[int, ...]], out: Path) -> Path:
    """``source`` with its inputs fixed at ``shapes`` (what --shape asks of the artifact)."""
    import onnx

    from edgekit.predict.graph.onnx_reader import with_input_shapes

    model = onnx.load(str(source))
    with_input_shapes(model, shapes)
    onnx.save(model, str(out))
    return Path(out)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a Dataset, one sample at a time."""

    def __init__(self, data: Dataset, input_names: list[str]) -> None:
        keys = {name: data.key_for(name) for name in input_names}
        self._items: Iterator[dict[str, np.ndarray]] = (
            {name: data.sample(i, key) for name, key in keys.items()} for i in range(len(data))
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def output_producers(path: Path) -> list[str]:
    """Names of the nodes that write the graph's outputs (the head kept float for detectors)."""
    import onnx

    model = onnx.load(str(path))
    outputs = {o.name for o in model.graph.output}
    producers = [node for node in model.graph.node if outputs & set(node.output)]
    # Walk back through shape-only nodes to the last op that computes something.
    computing = {"Conv", "MatMul", "Gemm", "Add"}
    by_output = {out: node for node in model.graph.node for out in node.output}
    names = []
    for node in producers:
        while node.op_type not in computing and node.input and node.input[0] in by_output:
            names.append(node.name)
            node = by_output[node.input[0]]
        names.append(node.name)
    return names


def quantize_onnx(
    source: Path, out: Path, precision: Precision, calibration: Dataset | None, *, keep_head_float: bool
) -> Path:
    with mapped(ORT_QUANTIZE, f"ONNX {precision.value} quantization failed", passes=ConversionError), quiet_stdout():
        return _quantize_onnx(source, out, precision, calibration, keep_head_float=keep_head_float)


def _quantize_onnx(
    source: Path, out: Path, precision: Precision, calibration: Dataset | None, *, keep_head_float: bool
) -> Path:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if precision is Precision.DYNAMIC:
        quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8)
        return Path(out)
    assert calibration is not None  # the pipeline checks this before converting
    prepared = Path(out).with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    session = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    quantize_static(
        str(prepared),
        str(out),
        _Reader(calibration, input_names),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=output_producers(prepared) if keep_head_float else None,
    )
    prepared.unlink(missing_ok=True)
    return Path(out)
