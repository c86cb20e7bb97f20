"""LiteRT (TFLite): ai_edge_litert, then tflite_runtime, then TensorFlow's own tf.lite.

XNNPACK is the default CPU delegate in all three; ``threads`` sets its thread count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ModelError, RuntimeUnavailable
from edgekit.foreign import LITERT_LOAD, LITERT_RESHAPE, RESHAPE_HINT, mapped
from edgekit.quiet import XNNPACK_NOTICE, filtered_stderr, silenced_stderr
from edgekit.runtimes.base import Quantization, Runtime, TensorSpec, describe_shapes


def interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]
        except ImportError:
            try:
                import tensorflow as tf
            except ImportError:
                raise RuntimeUnavailable(
                    "no TFLite runtime is installed (ai-edge-litert, tflite-runtime or tensorflow)",
                    hint="install one with: pip install 'edgekit[device]'",
                ) from None
            Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter


def _spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in signature)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantized = scale != 0.0 and np.dtype(detail["dtype"]).kind in "iu"
    return TensorSpec(
        name=detail["name"],
        shape=shape,
        dtype=np.dtype(detail["dtype"]).name,
        quantization=Quantization(float(scale), int(zero_point)) if quantized else None,
    )


def delegation(interpreter: Any) -> tuple[set[int], int]:
    """Which operators LiteRT's default CPU delegate (XNNPACK) leaves to its own kernels, and how
    many partitions it cuts the graph into, for an allocated interpreter. After allocation the
    graph lists one DELEGATE node per partition after the model's own operators: an operator
    whose output enters a partition, or that reads a partition's output without being one, runs
    outside it."""
    nodes = interpreter._get_ops_details()  # the only public-enough view of the graph
    delegates = [op for op in nodes if op["op_name"] == "DELEGATE"]
    if not delegates:
        return set(), 0
    count = len(nodes) - len(delegates)
    entering = {int(t) for op in delegates for t in op["inputs"]}
    leaving = {int(t) for op in delegates for t in op["outputs"]}
    graph_outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    undelegated = set()
    for index, op in enumerate(nodes[:count]):
        outputs = {int(t) for t in op["outputs"]}
        if outputs & leaving:
            continue  # a partition produces it
        if outputs & (entering | graph_outputs):
            undelegated.add(index)  # it feeds a partition or ends the graph outside one
    return undelegated, len(delegates)


class TFLiteRuntime(Runtime):
    """An interpreter allocated at the shapes it is asked to run: a model with a dynamic
    signature (``[-1, -1, -1, 3]``) is resized to the resolved shapes before allocation, never
    allocated at LiteRT's placeholder ``[1, 1, 1, 3]`` (where XNNPACK fails to reshape)."""

    name = "tflite"
    batch_samples = False  # one frame per invoke, as on a device

    def __init__(self, path: Path, *, threads: int | None = None, shapes: dict[str, tuple[int, ...]] | None = None):
        Interpreter = interpreter_class()  # noqa: N806
        with mapped(LITERT_LOAD, f"{path.name} is not a loadable TFLite model"), filtered_stderr(XNNPACK_NOTICE):
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._input_details = self._interpreter.get_input_details()
        self._output_details = self._interpreter.get_output_details()
        self._allocated: dict[str, tuple[int, ...]] | None = None
        super().__init__(path, [_spec(d) for d in self._input_details], [_spec(d) for d in self._output_details])
        if shapes is not None:
            self.prepare(shapes)
        elif not any(d is None for spec in self.inputs for d in spec.shape[1:]):
            # Static but for a leading batch: ready at batch 1 (LiteRT's allocation), as a device runs it.
            self.prepare({spec.name: tuple(1 if d is None else d for d in spec.shape) for spec in self.inputs})

    def prepare(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Resize the inputs to ``shapes`` and allocate; a failure names the shapes it was tried at."""
        if self._allocated == shapes:
            return
        missing = [d["name"] for d in self._input_details if d["name"] not in shapes]
        if missing:
            raise ModelError(f"{self.path.name}: no shape given for input '{missing[0]}'")
        interpreter = self._interpreter
        self._allocated = None
        what = f"{self.path.name} cannot be prepared at input shapes {describe_shapes(shapes)}"
        with mapped(LITERT_RESHAPE, what, hint=RESHAPE_HINT), filtered_stderr(XNNPACK_NOTICE):
            for detail in self._input_details:
                want = list(shapes[detail["name"]])
                if list(detail["shape"]) != want:
                    interpreter.resize_tensor_input(detail["index"], want)
            interpreter.allocate_tensors()
        self._input_details = interpreter.get_input_details()
        self._output_details = interpreter.get_output_details()
        self._allocated = dict(shapes)

    def _shapes_of(self, feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        return {detail["name"]: tuple(np.shape(feeds[detail["name"]])) for detail in self._input_details}

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.prepare(self._shapes_of(feeds))
        for detail in self._input_details:
            self._interpreter.set_tensor(detail["index"], feeds[detail["name"]])
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(d["index"]) for d in self._output_details]

    def bench_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        # Inputs set once; the timed call is the interpreter's invoke itself, as in a bare loop.
        prepared = self.check_feeds(feeds, raw=False)
        self.prepare(self._shapes_of(prepared))
        for detail in self._input_details:
            self._interpreter.set_tensor(detail["index"], prepared[detail["name"]])
        return self._interpreter.invoke

    def fully_accelerated(self) -> bool | None:
        """LiteRT's own answer (the flag litert-benchmark prints): every op on the CPU accelerator."""
        try:
            from ai_edge_litert.compiled_model import CompiledModel
        except ImportError:
            return None
        try:
            # LiteRT logs its search for NPU plugins on stderr; not the user's concern here.
            with silenced_stderr():
                return bool(CompiledModel.from_file(str(self.path)).is_fully_accelerated())
        except Exception:  # an older LiteRT without the compiled-model API
            return None

    def unaccelerated_ops(self) -> list[str]:
        if self._allocated is None:
            return []  # not prepared at any size yet: nothing is delegated
        try:
            undelegated, _ = delegation(self._interpreter)
        except Exception:  # noqa: BLE001 - an interpreter without the graph view: nothing to say
            return []
        nodes = self._interpreter._get_ops_details()
        return sorted({str(nodes[i]["op_name"]) for i in undelegated})

    def close(self) -> None:
        self._interpreter = None
