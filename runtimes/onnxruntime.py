"""ONNX Runtime on the CPU (other execution providers where installed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.errors import ModelError
from edgekit.runtimes.base import RuntimeBase, TensorSpec

# ONNX Runtime's type strings → numpy dtype names.
_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _spec(node) -> TensorSpec:  # noqa: ANN001 - onnxruntime.NodeArg
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorSpec(name=node.name, shape=shape, dtype=_ONNX_TYPES.get(node.type, "float32"))


class OnnxRuntime(RuntimeBase):
    name = "onnxruntime"

    def __init__(self, path: Path, *, threads: int | None = None, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path} is not a loadable ONNX model: {str(exc).splitlines()[0]}") from exc
        super().__init__(
            path, [_spec(n) for n in self._session.get_inputs()], [_spec(n) for n in self._session.get_outputs()]
        )
        self._output_names = [spec.name for spec in self.outputs]

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(self._output_names, feeds))

    def bench_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        prepared = self.check_feeds(feeds, raw=False)
        run, names = self._session.run, self._output_names
        return lambda: run(names, prepared)

    def fully_accelerated(self) -> bool | None:
        # On the CPU provider alone every node runs on it; with other providers ONNX Runtime
        # does not report the node assignment through its Python API.
        return True if self._session.get_providers() == ["CPUExecutionProvider"] else None

    def close(self) -> None:
        self._session = None
