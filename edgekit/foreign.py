"""Which foreign exceptions mean which edgekit error: one table per boundary edgekit calls across.

A boundary wraps its calls in ``with mapped(BOUNDARY, "what the user asked for")`` (httpx's
``map_exceptions`` is the model). The first row whose class is in the exception's ancestry
decides the edgekit error; its message is ``"<what>: <the foreign error's first line>"``, so a
user sees one line whatever the library printed, and an empty or thirty-line message reads the
same (``edgekit.errors.first_line``). Rows name classes by their dotted path: the tables can be
read and tested without the libraries installed, and a library not imported cannot match. An exception no row
matches is edgekit's own bug and goes on as it is (exit 70 with ``--debug`` to show it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgekit.errors import (
    BrokerError,
    ConfigError,
    ConversionError,
    DataError,
    EdgekitError,
    ModelError,
    ServerError,
    SourceError,
    first_line,
)


@dataclass(frozen=True)
class Boundary:
    """A library, what edgekit asks of it, and what each of its exceptions means then."""

    library: str
    doing: str
    rows: tuple[tuple[str, type[EdgekitError]], ...]  # (dotted class name, edgekit error), first match wins
    # The line of the foreign message that says what went wrong, for libraries that bury it.
    reason: Callable[[BaseException], str] = first_line

    def error_for(self, exc: BaseException) -> type[EdgekitError] | None:
        ancestry = {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}
        return next((ours for name, ours in self.rows if name in ancestry), None)


# A model file the library cannot read is the file's problem, whatever type it raises for it:
# protobuf's DecodeError, onnx's ValidationError, ORT's Fail/InvalidGraph, OpenVINO's
# RuntimeError subclasses, Keras's ValueError/OSError/zipfile errors.
_ANY_FAILURE_IS_THE_MODELS = (("builtins.Exception", ModelError),)

KERAS_LOAD = Boundary("Keras", "read a Keras model", _ANY_FAILURE_IS_THE_MODELS)
ONNX_LOAD = Boundary("onnx", "read an ONNX model", _ANY_FAILURE_IS_THE_MODELS)
ORT_LOAD = Boundary("ONNX Runtime", "load an ONNX model", _ANY_FAILURE_IS_THE_MODELS)
OPENVINO_LOAD = Boundary("OpenVINO", "load an OpenVINO model", _ANY_FAILURE_IS_THE_MODELS)
LITERT_LOAD = Boundary("LiteRT", "load a TFLite model", _ANY_FAILURE_IS_THE_MODELS)
# Preparing a model at input sizes it cannot take (a resize, a reshape, OpenVINO's shape inference).
RESHAPE_HINT = "check --shape against the sizes the model was made for"
LITERT_RESHAPE = Boundary(
    "LiteRT",
    "resize a TFLite model's inputs",
    (("builtins.ValueError", ModelError), ("builtins.RuntimeError", ModelError)),
)
OPENVINO_RESHAPE = Boundary("OpenVINO", "reshape an OpenVINO model", _ANY_FAILURE_IS_THE_MODELS)
# One inference failing inside the engine: the model cannot run these inputs.
ENGINE_RUN = Boundary("a runtime", "run a model", _ANY_FAILURE_IS_THE_MODELS)

# A converter that gives up: the route cannot make this model (an operator it lacks, a pattern
# it cannot fuse); the conversion fails with its reason, the source is not blamed.
_ANY_FAILURE_IS_THE_CONVERSIONS = (("builtins.Exception", ConversionError),)
TF2ONNX_CONVERT = Boundary("tf2onnx", "convert to ONNX", _ANY_FAILURE_IS_THE_CONVERSIONS)
ORT_QUANTIZE = Boundary("ONNX Runtime", "quantize an ONNX model", _ANY_FAILURE_IS_THE_CONVERSIONS)
OPENVINO_CONVERT = Boundary("OpenVINO", "convert to OpenVINO IR", _ANY_FAILURE_IS_THE_CONVERSIONS)


def _converter_error_line(exc: BaseException) -> str:
    """TensorFlow's converter prints MLIR diagnostics ("<unknown>:0: error: 'tfl.conv_2d' op …")
    after lines of location; the first line saying "error" is the reason."""
    found = next((line.strip() for line in str(exc).splitlines() if "error" in line.lower()), None)
    return found[:300] if found else first_line(exc)


TFLITE_CONVERT = Boundary(
    "TensorFlow Lite converter", "convert to TFLite", _ANY_FAILURE_IS_THE_CONVERSIONS, reason=_converter_error_line
)
# onnx2tf runs in a process of its own (converters/onnx_to_tflite.py): what crosses that boundary
# is its exit status and printed lines, read there, not exceptions this table could match.

# Video and images: OpenCV raises cv2.error for a backend that cannot take a source, or pixels
# it cannot resize or convert.
OPENCV_OPEN = Boundary("OpenCV", "open a video source", (("cv2.error", SourceError),))
OPENCV_IMAGE = Boundary("OpenCV", "read an image", (("cv2.error", DataError),))

# The network: the broker is missing, refuses, or the embedded one cannot start.
PAHO_CONNECT = Boundary("paho-mqtt", "connect to the MQTT broker", (("builtins.OSError", BrokerError),))
AMQTT_START = Boundary("amqtt", "start the embedded broker", (("builtins.Exception", BrokerError),))
# The HTTP server: edgekit binds the socket itself (a port in use is found there); what uvicorn can
# still meet is the socket failing under it.
UVICORN_SERVE = Boundary("uvicorn", "serve the model over HTTP", (("builtins.OSError", ServerError),))

# A deployment key file that is not a PEM key (or not one cryptography can read) is the user's
# file's problem.
KEY_LOAD = Boundary(
    "cryptography",
    "read a deployment key",
    (("builtins.ValueError", ConfigError), ("cryptography.exceptions.UnsupportedAlgorithm", ConfigError)),
)

BOUNDARIES = (
    KERAS_LOAD, ONNX_LOAD, ORT_LOAD, OPENVINO_LOAD, LITERT_LOAD, LITERT_RESHAPE, OPENVINO_RESHAPE, ENGINE_RUN,
    TF2ONNX_CONVERT, ORT_QUANTIZE, OPENVINO_CONVERT, TFLITE_CONVERT, OPENCV_OPEN, OPENCV_IMAGE, PAHO_CONNECT,
    AMQTT_START, UVICORN_SERVE, KEY_LOAD,
)  # fmt: skip


@contextlib.contextmanager
def mapped(
    boundary: Boundary, what: str, *, hint: str | None = None, passes: type[EdgekitError] = EdgekitError
) -> Iterator[None]:
    """Raise the edgekit error ``boundary`` maps a foreign exception of the block to. Its message
    is ``what`` with the foreign error's first line: in place of ``{reason}`` where ``what`` has
    one, else after a colon. edgekit's own errors of kind ``passes`` go through untouched; a
    converter passes only its ConversionError, so a data problem met mid-conversion fails that
    conversion (and ``--quant auto`` tries the next rung) rather than the whole command."""
    try:
        yield
    except passes:
        raise
    except Exception as exc:
        ours = boundary.error_for(exc)
        if ours is None:
            raise
        reason = boundary.reason(exc)
        message = what.replace("{reason}", reason) if "{reason}" in what else f"{what}: {reason}"
        raise ours(message, hint=hint) from exc
