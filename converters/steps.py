"""The converter plan as data: which named steps take a source to a target, and one function
per step name (as tf2onnx's optimizer passes are an ordered list of named passes).

    keras    → tflite    keras_to_tflite
    onnx     → tflite    onnx_to_tflite (onnx2tf)
    keras    → onnx      keras_to_onnx [→ quantize_onnx]
    tflite   → onnx      tflite_to_onnx [→ quantize_onnx]
    any      → openvino  to_openvino (fp16 compression or NNCF int8 inside)
    a format → itself    adopt (checked and given a manifest as it is), or re-quantized
                         (onnx: quantize_onnx; OpenVINO IR: to_openvino)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.data import Dataset
from edgekit.errors import ConfigError
from edgekit.formats import Format, Precision, SourceKind

ADOPT = "adopt"


def plan(kind: SourceKind, target: Format, precision: Precision) -> list[str]:
    if kind not in target.sources:
        sources = ", ".join(s.value for s in target.sources)
        raise ConfigError(f"edgekit converts to {target.name} from {sources}, not from {kind.value}")
    if kind.value == target.name:  # the same format: adopt it, or re-quantize where that exists
        if precision is Precision.FP32:
            return [ADOPT]
        if target.name == "onnx":
            return ["quantize_onnx"]
        if target.name == "openvino":
            return ["to_openvino"]
        raise ConfigError(
            f"a .{target.suffix.lstrip('.')} cannot be re-quantized without the model it came from",
            hint="convert that model with --quant, or adopt this one as it is (--quant fp32)",
        )
    if target.name == "tflite":
        return ["onnx_to_tflite"] if kind is SourceKind.ONNX else ["keras_to_tflite"]
    if target.name == "onnx":
        first = {SourceKind.KERAS: "keras_to_onnx", SourceKind.TFLITE: "tflite_to_onnx"}[kind]
        return [first] + ([] if precision is Precision.FP32 else ["quantize_onnx"])
    return ["to_openvino"]


@dataclass
class StepInput:
    """What one step reads and writes."""

    source: Path  # the request's source model
    kind: SourceKind
    current: Path  # what the previous step wrote (the source for the first step)
    out: Path  # where this step writes
    precision: Precision
    keras_model: Any  # the loaded Keras model (fixed at --shape where given), or None
    calibration: Dataset | None
    shapes: dict[str, tuple[int, ...]]  # the resolved input shapes
    fix_shapes: bool  # --shape was given: the artifact is fixed at those shapes
    detector: bool
    allow_flex: bool
    notes: list[str] = field(default_factory=list)
    layout: dict[str, Any] = field(default_factory=dict)  # how the step laid tensors out (onnx2tf)


def _keras_to_tflite(step: StepInput) -> Path:
    from edgekit.converters.keras_to_tflite import TFLiteOptions, keras_to_tflite

    options = TFLiteOptions(
        precision=step.precision,
        calibration=step.calibration,
        float_output=step.detector,
        allow_flex=step.allow_flex,
    )
    written = keras_to_tflite(step.keras_model, step.out, options)
    step.notes += options.notes
    return written


def _onnx_to_tflite(step: StepInput) -> Path:
    from edgekit.converters.onnx_to_tflite import OnnxToTFLiteOptions, onnx_to_tflite

    options = OnnxToTFLiteOptions(step.precision, step.shapes, step.calibration)
    written = onnx_to_tflite(step.current, step.out, options)
    step.notes += options.notes
    step.layout["channels_last"] = True  # onnx2tf's NHWC: what moved is read back in the check
    return written


def _keras_to_onnx(step: StepInput) -> Path:
    from edgekit.converters.to_onnx import keras_to_onnx

    return keras_to_onnx(step.keras_model, step.out)


def _tflite_to_onnx(step: StepInput) -> Path:
    from edgekit.converters.to_onnx import tflite_to_onnx

    return tflite_to_onnx(step.current, step.out)


def _quantize_onnx(step: StepInput) -> Path:
    from edgekit.converters.to_onnx import fixed_input_copy, quantize_onnx

    current = step.current
    if step.fix_shapes and step.kind is SourceKind.ONNX:
        current = fixed_input_copy(current, step.shapes, step.out.with_name("fixed.onnx"))
    written = quantize_onnx(current, step.out, step.precision, step.calibration, keep_head_float=step.detector)
    if step.detector and step.precision is Precision.INT8:
        step.notes.append("detector head kept in float")
    return written


def _to_openvino(step: StepInput) -> Path:
    from edgekit.converters.to_openvino import to_openvino

    source = step.keras_model if step.kind is SourceKind.KERAS else step.current
    return to_openvino(
        source,
        step.out,
        step.precision,
        step.calibration,
        keep_head_float=step.detector,
        shapes=step.shapes if step.fix_shapes and step.kind is not SourceKind.KERAS else None,
    )


def _adopt(step: StepInput) -> Path:
    """The artifact as it is: copied to be checked and installed with its manifest."""
    shutil.copyfile(step.source, step.out)
    if step.source.suffix == ".xml":
        shutil.copyfile(step.source.with_suffix(".bin"), step.out.with_suffix(".bin"))
    step.notes.append("adopted as it is: checked on its own runtime, given a manifest")
    return step.out


STEPS: dict[str, Callable[[StepInput], Path]] = {
    "keras_to_tflite": _keras_to_tflite,
    "onnx_to_tflite": _onnx_to_tflite,
    "keras_to_onnx": _keras_to_onnx,
    "tflite_to_onnx": _tflite_to_onnx,
    "quantize_onnx": _quantize_onnx,
    "to_openvino": _to_openvino,
    ADOPT: _adopt,
}
