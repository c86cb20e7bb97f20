"""ONNX Runtime on the CPU (other execution providers where installed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.errors import ModelError
from edgekit.foreign import ORT_LOAD, mapped
from edgekit.quiet import debugging
from edgekit.runtimes.base import Runtime, TensorSpec

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
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
}


def _spec(node) -> TensorSpec:  # noqa: ANN001 - onnxruntime.NodeArg
    # ORT gives an int for a fixed size, a str for a named dynamic one ('batch',
    # 'p2o.DynamicDimension.0') and None (or 0 / -1 from some exporters) for an unnamed one.
    dims = list(node.shape or [])
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in dims)
    names = tuple(d if isinstance(d, str) else None for d in dims)
    dtype = _ONNX_TYPES.get(node.type, "string" if node.type == "tensor(string)" else "float32")
    return TensorSpec(name=node.name, shape=shape, dtype=dtype, dim_names=names if any(names) else ())


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        shapes: dict[str, tuple[int, ...]] | None = None,  # ORT plans per call: any shape runs
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # ORT logs a failed run at ERROR on stderr before raising; edgekit reports the raise as one
        # line (naming the shapes), so its own log stays off unless --debug.
        options.log_severity_level = 3 if debugging() else 4
        with mapped(ORT_LOAD, f"{path.name} is not a loadable ONNX model"):
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
            )
        outputs = [n for n in self._session.get_outputs() if n.type.startswith("tensor(")]
        # scikit-learn's ZipMap gives a sequence of maps beside its tensors: edgekit runs tensors.
        self.left_out_outputs = [n.name for n in self._session.get_outputs() if not n.type.startswith("tensor(")]
        if not outputs:
            raise ModelError(
                f"{path.name} has no tensor outputs (only {', '.join(self.left_out_outputs)}): edgekit runs tensors",
                hint="export the model with tensor outputs (skl2onnx: options={'zipmap': False})",
            )
        super().__init__(path, [_spec(n) for n in self._session.get_inputs()], [_spec(n) for n in outputs])
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
