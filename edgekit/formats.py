"""The format table: one place that says what edgekit can write and at which precisions.

The CLI's choices, its validation and suggestions, the converter pipeline, the quantization
ladder and the benchmarks all read ``FORMATS``; nothing branches on a row's position.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from edgekit.errors import ConfigError, InputNotFoundError, ModelError, UnknownNameError


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"  # float16 weights
    DYNAMIC = "dynamic"  # int8 weights, float activations (no calibration data)
    INT8 = "int8"  # int8 weights and activations (calibration data required)

    @property
    def needs_calibration(self) -> bool:
        return self is Precision.INT8


# The ladder `--quant auto` climbs: full int8 first (what integer kernels and NPUs run), the first that
# stays within --max-drop wins.
LADDER: tuple[Precision, ...] = (Precision.INT8, Precision.DYNAMIC, Precision.FP16, Precision.FP32)


class SourceKind(str, Enum):
    KERAS = "keras"  # .keras, .h5, or a SavedModel folder
    TFLITE = "tflite"
    ONNX = "onnx"
    OPENVINO = "openvino"  # an IR's .xml (with its .bin)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    runtime: str  # key of edgekit.runtimes.RUNTIMES used to check the artifact
    precisions: tuple[Precision, ...]
    sources: tuple[SourceKind, ...]  # what it converts from
    companion_suffixes: tuple[str, ...] = ()  # files written beside the artifact (OpenVINO's .bin)

    def ladder(self) -> tuple[Precision, ...]:
        return tuple(p for p in LADDER if p in self.precisions)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="tflite",
            suffix=".tflite",
            runtime="tflite",
            precisions=(Precision.FP32, Precision.FP16, Precision.DYNAMIC, Precision.INT8),
            sources=(SourceKind.KERAS, SourceKind.ONNX, SourceKind.TFLITE),
        ),
        Format(
            name="onnx",
            suffix=".onnx",
            runtime="onnxruntime",
            precisions=(Precision.FP32, Precision.DYNAMIC, Precision.INT8),
            sources=(SourceKind.KERAS, SourceKind.TFLITE, SourceKind.ONNX),
        ),
        Format(
            name="openvino",
            suffix=".xml",
            runtime="openvino",
            precisions=(Precision.FP32, Precision.FP16, Precision.INT8),
            sources=(SourceKind.KERAS, SourceKind.TFLITE, SourceKind.ONNX, SourceKind.OPENVINO),
            companion_suffixes=(".bin",),
        ),
    )
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownNameError("format", name, FORMATS) from None


def parse_precision(name: str) -> Precision | None:
    """A precision name, or None for ``auto`` (the ladder)."""
    if name == "auto":
        return None
    try:
        return Precision(name)
    except ValueError:
        raise UnknownNameError("precision", name, [p.value for p in Precision] + ["auto"]) from None


def check_precision(fmt: Format, precision: Precision) -> None:
    if precision not in fmt.precisions:
        allowed = ", ".join(p.value for p in fmt.precisions)
        raise ConfigError(
            f"--to {fmt.name} does not support --quant {precision.value}", hint=f"choose one of: {allowed}"
        )


def source_kind(path: Path) -> SourceKind:
    """What kind of model ``path`` is, from its name (content is checked when it is loaded)."""
    if not path.exists():
        raise InputNotFoundError(f"model {path} does not exist", hint="check the path")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return SourceKind.KERAS
        raise ModelError(f"{path} is a folder but not a SavedModel (no saved_model.pb)")
    suffix = path.suffix.lower()
    if suffix in (".keras", ".h5", ".hdf5"):
        return SourceKind.KERAS
    if suffix == ".tflite":
        return SourceKind.TFLITE
    if suffix == ".onnx":
        return SourceKind.ONNX
    if suffix == ".xml":
        return SourceKind.OPENVINO
    raise ModelError(
        f"{path.name}: edgekit converts .keras, .h5, SavedModel folders, .tflite and .onnx, not '{suffix}'"
    )
