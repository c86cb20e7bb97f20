"""Loading source models, with a corrupt or truncated file reported as a ModelError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import ModelError, require_extra
from edgekit.foreign import ONNX_LOAD, mapped
from edgekit.runtimes.keras import load_keras_model

__all__ = ["check_tflite_file", "load_keras_model", "load_onnx_model"]


def check_tflite_file(path: Path) -> None:
    """A flatbuffer with the TFLite identifier that the interpreter accepts."""
    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite model (no TFL3 identifier)", hint="is the file complete?")
    from edgekit.runtimes import load_runtime

    load_runtime(path, "tflite").close()


def load_onnx_model(path: Path) -> Any:
    require_extra("onnx", "convert", alone="onnx")
    import onnx

    with mapped(ONNX_LOAD, f"{path} is not a valid ONNX model ({{reason}})", hint="is the file complete?"):
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    return model
