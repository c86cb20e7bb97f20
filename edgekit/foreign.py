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
from collections.abc import Iterator
from dataclasses import dataclass

from edgekit.errors import BrokerError, ConversionError, EdgekitError, ModelError, first_line


@dataclass(frozen=True)
class Boundary:
    """A library, what edgekit asks of it, and what each of its exceptions means then."""

    library: str
    doing: str
    rows: tuple[tuple[str, type[EdgekitError]], ...]  # (dotted class name, edgekit error), first match wins

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

# The network: the broker is missing, refuses, or the embedded one cannot start.
PAHO_CONNECT = Boundary("paho-mqtt", "connect to the MQTT broker", (("builtins.OSError", BrokerError),))
AMQTT_START = Boundary("amqtt", "start the embedded broker", (("builtins.Exception", BrokerError),))

BOUNDARIES = (
    KERAS_LOAD, ONNX_LOAD, ORT_LOAD, OPENVINO_LOAD, LITERT_LOAD, LITERT_RESHAPE, OPENVINO_RESHAPE, ENGINE_RUN,
    TF2ONNX_CONVERT, ORT_QUANTIZE, OPENVINO_CONVERT, PAHO_CONNECT, AMQTT_START,
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
        reason = first_line(exc)
        message = what.replace("{reason}", reason) if "{reason}" in what else f"{what}: {reason}"
        raise ours(message, hint=hint) from exc
