"""Keras itself: the server-side reference every artifact is checked against, and what
``edgekit serve`` runs for a .keras model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.runtimes.base import RuntimeBase, TensorSpec


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


class KerasRuntime(RuntimeBase):
    name = "keras"

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        model: Any = None,
        shapes: dict[str, tuple[int, ...]] | None = None,  # Keras runs any shape its layers take
    ) -> None:
        from edgekit.converters.sources import load_keras_model

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
