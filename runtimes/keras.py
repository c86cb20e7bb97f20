"""Keras itself: the server-side reference every artifact is checked against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.runtimes.base import RuntimeBase, TensorSpec


def _spec(tensor: Any) -> TensorSpec:
    return TensorSpec(
        name=tensor.name.split(":")[0],
        shape=tuple(None if d is None else int(d) for d in tensor.shape),
        dtype=np.dtype(str(tensor.dtype).split(".")[-1]).name,
    )


class KerasRuntime(RuntimeBase):
    name = "keras"

    def __init__(self, path: Path, *, threads: int | None = None, model: Any = None) -> None:
        from edgekit.converters.sources import load_keras_model

        self.model = model if model is not None else load_keras_model(path)
        super().__init__(path, [_spec(t) for t in self.model.inputs], [_spec(t) for t in self.model.outputs])

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = [feeds[spec.name] for spec in self.inputs]
        result = self.model(batch if len(batch) > 1 else batch[0], training=False)
        results = result if isinstance(result, (list, tuple)) else [result]
        return [np.asarray(r) for r in results]
