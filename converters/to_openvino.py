"""Keras, ONNX or TFLite → OpenVINO IR (.xml + .bin): fp32, fp16-compressed, or int8 by NNCF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.data import Dataset
from edgekit.errors import ConversionError
from edgekit.foreign import OPENVINO_CONVERT, mapped
from edgekit.formats import Precision
from edgekit.quiet import quiet_stdout


def to_openvino(
    source: Path | Any,
    out: Path,
    precision: Precision,
    calibration: Dataset | None,
    *,
    keep_head_float: bool = False,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> Path:
    """``source`` is a model file OpenVINO reads (.onnx, .tflite, an IR's .xml) or an in-memory
    Keras model; ``shapes`` fixes its inputs at those sizes (--shape)."""
    import openvino as ov

    with mapped(OPENVINO_CONVERT, "OpenVINO conversion failed", passes=ConversionError), quiet_stdout():
        if isinstance(source, Path) and source.suffix == ".xml":
            model = ov.Core().read_model(str(source))
        else:
            model = ov.convert_model(str(source) if isinstance(source, Path) else source)
        if shapes:
            ports = list(model.inputs)
            by_name = {port: shapes.get(port.get_any_name()) for port in ports}
            if any(shape is None for shape in by_name.values()):
                missing = [port.get_any_name() for port, shape in by_name.items() if shape is None]
                raise ConversionError(f"--shape gives no size for OpenVINO input '{missing[0]}'")
            model.reshape({port: list(shape) for port, shape in by_name.items() if shape is not None})
        if precision is Precision.INT8:
            model = _quantize(model, calibration, keep_head_float=keep_head_float)
        ov.save_model(model, str(out), compress_to_fp16=precision is Precision.FP16)
    return Path(out)


def _quantize(model: Any, calibration: Dataset | None, *, keep_head_float: bool) -> Any:
    import nncf

    assert calibration is not None  # the pipeline checks this before converting
    names = [port.get_any_name() for port in model.inputs]

    keys = {name: calibration.key_for(name) for name in names}
    items = [{name: calibration.sample(i, keys[name]) for name in names} for i in range(len(calibration))]
    ignored = None
    if keep_head_float:
        heads = [result.input_value(0).get_node().get_friendly_name() for result in model.get_results()]
        ignored = nncf.IgnoredScope(names=heads, validate=False)
    return nncf.quantize(
        model,
        nncf.Dataset(items),
        subset_size=len(items),
        preset=nncf.QuantizationPreset.MIXED,
        ignored_scope=ignored,
    )
