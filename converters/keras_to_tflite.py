"""Keras → TFLite with TensorFlow's TFLiteConverter, at fp32, fp16, dynamic-range or int8.

Two things this module knows that the converter does not say plainly:
- A Keras LSTM with a dynamic batch does not lower to TFLite builtins (TensorListReserve needs a
  static element shape). Rebuilding the model with a batch-1 input and copying the weights
  converts to builtins with exact parity, so that is retried automatically, and said.
- Flex (SELECT_TF_OPS) models need the TensorFlow runtime on the device, which device runtimes
  do not have: only with ``allow_flex`` and a warning.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import Dataset
from edgekit.errors import ConversionError
from edgekit.foreign import TFLITE_CONVERT, mapped
from edgekit.formats import Precision
from edgekit.quiet import filtered_stderr, quiet_stdout

# The MLIR quantizer's summary of its settings, printed on every int8 conversion.
QUANTIZER_NOTICE = "fully_quantize:"


@dataclass
class TFLiteOptions:
    precision: Precision = Precision.FP32
    calibration: Dataset | None = None
    # Detectors: keep the output float so box decoding is not quantized.
    float_output: bool = False
    allow_flex: bool = False
    notes: list[str] = field(default_factory=list)


def fixed_shape_copy(model: Any, shapes: list[tuple[int, ...]] | None = None) -> Any:
    """The same model rebuilt with fixed input shapes (``shapes`` in the model's input order; else
    batch 1 on every input), sharing no state but weights. By position: a loaded model's input
    tensors are named ``keras_tensor`` while its input layers are ``input_layer``."""
    import keras

    from edgekit.errors import ConversionError

    config = model.get_config()
    order = config.get("input_layers") or []
    if order and isinstance(order[0], str):  # one input: [name, node, tensor]
        order = [order]
    names = [entry[0] for entry in order]
    layers = {layer.get("name") or layer["config"].get("name"): layer for layer in config.get("layers", [])}
    inputs = [layers[name] for name in names if name in layers] or [
        layer for layer in config.get("layers", []) if layer.get("class_name") == "InputLayer"
    ]
    if shapes is not None and len(inputs) != len(shapes):
        raise ConversionError(f"cannot fix the inputs of this Keras model at --shape ({len(inputs)} input layers)")
    for index, layer in enumerate(inputs):
        key = "batch_shape" if "batch_shape" in layer["config"] else "batch_input_shape"
        shape = layer["config"].get(key)
        layer["config"][key] = list(shapes[index]) if shapes is not None else [1, *shape[1:]]
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _representative(model: Any, data: Dataset) -> Callable[[], Iterator[list[np.ndarray]]]:
    keys = [data.key_for(t.name.split(":")[0]) for t in model.inputs]

    def generate() -> Iterator[list[np.ndarray]]:
        for i in range(len(data)):
            yield [data.sample(i, key) for key in keys]

    return generate


def _make_converter(model: Any, options: TFLiteOptions, *, builtins_int8_only: bool) -> Any:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if options.precision is Precision.FP16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif options.precision is Precision.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif options.precision is Precision.INT8:
        assert options.calibration is not None  # checked by the pipeline before conversion
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(model, options.calibration)
        ops = (
            [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if builtins_int8_only
            else [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                tf.lite.OpsSet.TFLITE_BUILTINS,
            ]
        )
        # int8 in and out where the tensors are float (ids stay int32); the runtime quantizes.
        if all(t.dtype == "float32" for t in model.inputs):
            converter.inference_input_type = tf.int8
        if not options.float_output:
            converter.inference_output_type = tf.int8
    if options.allow_flex:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    return converter


_UNSUPPORTED = re.compile(r"(?:tf\.|'tf\.)([A-Za-z0-9_]+)")


def _unsupported_ops(message: str) -> list[str]:
    if "not supported" not in message and "Select TensorFlow op" not in message:
        return []
    return sorted(set(_UNSUPPORTED.findall(message)))


@contextlib.contextmanager
def _naming_unsupported_ops() -> Iterator[None]:
    """A converter error that lists operators TFLite builtins lack becomes that list, with what to do."""
    try:
        yield
    except Exception as exc:
        ops = _unsupported_ops(str(exc))
        if not ops:
            raise
        hint = (
            "these need TensorFlow on the device; --allow-flex converts them anyway (device runtimes cannot run them)"
        )
        raise ConversionError(f"TFLite builtins do not support: {', '.join(ops)}", hint=hint) from exc


def _needs_static_batch(message: str) -> bool:
    return "TensorListReserve" in message or "element_shape to be static" in message


def _convert_once(model: Any, options: TFLiteOptions) -> bytes:
    """Convert, falling back from int8-only builtins to mixed int8/float builtins if needed."""
    try:
        with quiet_stdout(), filtered_stderr(QUANTIZER_NOTICE):
            return _make_converter(model, options, builtins_int8_only=True).convert()
    except Exception as exc:
        if options.precision is not Precision.INT8 or _needs_static_batch(str(exc)):
            raise
        options.notes.append("some operators have no int8 kernel and stay float (int8 + float builtins)")
        with quiet_stdout(), filtered_stderr(QUANTIZER_NOTICE):
            return _make_converter(model, options, builtins_int8_only=False).convert()


def keras_to_tflite(model: Any, out: Path, options: TFLiteOptions) -> Path:
    """Convert a Keras model to ``out`` (.tflite). Raises ConversionError naming unsupported ops."""
    with mapped(TFLITE_CONVERT, "TFLite conversion failed", passes=ConversionError), _naming_unsupported_ops():
        try:
            content = _convert_once(model, options)
        except Exception as exc:
            if not _needs_static_batch(str(exc)):
                raise
            options.notes.append(
                "the model needs a static batch for TFLite builtins (LSTM): rebuilt with a batch-1 input "
                "and the same weights"
            )
            content = _convert_once(fixed_shape_copy(model), options)
    if options.allow_flex and b"Flex" in content:
        options.notes.append("WARNING: the model uses Flex (SELECT_TF_OPS) ops; device runtimes cannot run it")
    Path(out).write_bytes(content)
    return Path(out)
