"""Loading source models, with a corrupt or truncated file reported as a ModelError."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekit.errors import ModelError, require_extra
from edgekit.quiet import debugging


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Keep what converters print off stdout: with --json, stdout belongs to the report alone.

    TensorFlow's exporter prints its signatures from Python, NNCF's progress bars hold their own
    handle on stdout, and native code writes to file descriptor 1; redirecting the descriptor
    catches all. The text is dropped (edgekit reports its own progress) unless EDGEKIT_DEBUG is
    set (`--debug`), when it goes to stderr.
    """
    debug = debugging()
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real descriptor (an embedding host): Python-level redirect only
        with contextlib.redirect_stdout(sys.stderr if debug else io.StringIO()):
            yield
        return
    sink = None if debug else open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        os.dup2(2 if sink is None else sink.fileno(), 1)
        with contextlib.redirect_stdout(sys.stderr if sink is None else sink):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if sink is not None:
            sink.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def load_keras_model(path: Path) -> Any:
    require_extra("tensorflow", "convert")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    path = Path(path)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a Keras model archive (a .keras file is a zip)", hint="is the file complete?")
    try:
        if path.is_dir():
            import tensorflow as tf

            # A SavedModel is wrapped as an inference-only layer so it behaves like a Keras model.
            layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
            signature = tf.saved_model.load(str(path)).signatures["serving_default"]
            inputs = [
                keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=name)
                for name, spec in signature.structured_input_signature[1].items()
            ]
            outputs = layer(inputs[0] if len(inputs) == 1 else inputs)
            if isinstance(outputs, dict):
                outputs = list(outputs.values())
            return keras.Model(inputs, outputs)
        with quiet_stdout():
            return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged file
        raise ModelError(
            f"{path} could not be read as a Keras model ({_first_line(exc)})",
            hint="is the file complete? re-save it with model.save()",
        ) from exc


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

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError …
        raise ModelError(
            f"{path} is not a valid ONNX model ({_first_line(exc)})", hint="is the file complete?"
        ) from exc
    return model
