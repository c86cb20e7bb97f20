"""Keras itself: the server-side reference every artifact is checked against, and what
``edgekit serve`` runs for a .keras model."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, ModelError, require_extra
from edgekit.foreign import KERAS_LOAD, mapped
from edgekit.quiet import quiet_stdout
from edgekit.runtimes.base import Runtime, TensorSpec


def _spec(tensor: Any, name: str | None = None) -> TensorSpec:
    return TensorSpec(
        name=name or tensor.name.split(":")[0],
        shape=tuple(None if d is None else int(d) for d in tensor.shape),
        dtype=np.dtype(str(tensor.dtype).split(".")[-1]).name,
    )


def _output_specs(model: Any) -> list[TensorSpec]:
    # Keras 3 names output tensors "keras_tensor_15"; the layer names ("probabilities") are what
    # a user wrote and what a server's metadata should show.
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        names = [None] * len(model.outputs)
    return [_spec(t, n) for t, n in zip(model.outputs, names, strict=True)]


def _graph_call(model: Any, inputs: list[TensorSpec]) -> Callable[..., Any] | None:
    """The model as one TensorFlow graph over any batch size: a batch-1 call takes about 1 ms
    instead of eager Keras's 8 ms here, which is what TF Serving runs too. None where the
    backend is not TensorFlow or the model does not trace."""
    try:
        import tensorflow as tf

        signature = [tf.TensorSpec(spec.shape, spec.dtype) for spec in inputs]

        def call(*tensors: Any) -> Any:
            return model(list(tensors) if len(tensors) > 1 else tensors[0], training=False)

        graph = tf.function(call, input_signature=signature, autograph=False)
        graph.get_concrete_function()  # trace now: a model that cannot be traced runs eagerly
        return graph
    except Exception:  # noqa: BLE001 - any tracing failure means: run eagerly, as before
        return None


class KerasRuntime(Runtime):
    name = "keras"

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        model: Any = None,
        shapes: dict[str, tuple[int, ...]] | None = None,  # Keras runs any shape its layers take
    ) -> None:
        _limit_threads(threads)
        self.model = model if model is not None else load_keras_model(path)
        super().__init__(path, [_spec(t) for t in self.model.inputs], _output_specs(self.model))
        self._graph = _graph_call(self.model, self.inputs)

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = [feeds[spec.name] for spec in self.inputs]
        if self._graph is not None:
            result = self._graph(*batch)
        else:
            result = self.model(batch if len(batch) > 1 else batch[0], training=False)
        results = result if isinstance(result, (list, tuple)) else [result]
        return [np.asarray(r) for r in results]


def _limit_threads(threads: int | None) -> None:
    """Run TensorFlow's kernels on ``threads`` threads, or refuse: TensorFlow takes the setting
    only before its runtime starts, once per process."""
    if threads is None:
        return
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError as exc:  # "cannot be modified after initialization"
        raise ConfigError(
            f"the Keras runtime cannot switch to {threads} threads: TensorFlow already runs in this process",
            hint="run the Keras model in a process of its own, or leave --threads out for it",
        ) from exc


def load_keras_model(path: Path) -> Any:
    require_extra("tensorflow", "convert")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    path = Path(path)
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a Keras model archive (a .keras file is a zip)", hint="is the file complete?")
    reading = mapped(
        KERAS_LOAD,
        f"{path} could not be read as a Keras model ({{reason}})",
        hint="is the file complete? re-save it with model.save()",
    )
    with reading:  # Keras raises many types for a damaged file
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
