"""What a model's graph costs, operator by operator: MACs, parameters, bytes moved, activation memory.

Each format is read with its own library (LiteRT's interpreter for .tflite, ``onnx`` with shape
inference for .onnx, OpenVINO's API for IR) into one neutral form, a list of ``Op`` with their
input and output tensors; one set of formulas then prices every operator. An operator kind that
is not in the table is kept and counted as "unknown cost", never a crash, so a new model still
gets an analysis of everything else.

Operators whose inputs are all constants (weight dequantization, shape arithmetic) are folded
at load time by every runtime, so they cost nothing here and their outputs count as weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import ConfigError, InputNotFoundError
from edgekit.predict.graph.ir import COMPUTE_CLASSES, ClassTotals, GraphCost, Op, OpClass, OpCost, Shapes, Tensor
from edgekit.predict.graph.onnx_reader import onnx_inputs, read_onnx, value_dependent_outputs
from edgekit.predict.graph.openvino_reader import read_openvino
from edgekit.predict.graph.ort_reader import read_onnx_as_run
from edgekit.predict.graph.pricing import cost_of, op_class_of, peak_activation_bytes, price
from edgekit.predict.graph.tflite_reader import read_tflite
from edgekit.runtimes.base import TensorSpec

__all__ = [
    "COMPUTE_CLASSES", "ClassTotals", "GraphCost", "Op", "OpClass", "OpCost", "Shapes", "Tensor", "analyze", "cost_of",
    "model_inputs", "op_class_of", "peak_activation_bytes", "price", "value_dependent_outputs",
]  # fmt: skip


def model_inputs(path: Path) -> list[TensorSpec]:
    """The inputs as the model file declares them (``TensorSpec``, None for a dynamic dimension)."""
    if Path(path).suffix.lower() == ".onnx":
        return onnx_inputs(Path(path))  # read from the file: a runtime would fix what it declares dynamic
    from edgekit.runtimes import load_runtime

    with load_runtime(Path(path)) as runtime:
        return list(runtime.inputs)


def analyze(
    path: Path,
    engine: str | None = None,
    shapes: Shapes | None = None,
    feeds: dict[str, np.ndarray] | None = None,
    *,
    threads: int = 1,
    timing_budget_s: float = 0.0,
) -> GraphCost:
    """Analyze a .tflite, .onnx or OpenVINO .xml model at the input ``shapes`` it will run at
    (edgekit.inputs resolves them; None: the model's own static shape, a dynamic batch as 1,
    anything else dynamic an error). ``engine`` names the runtime that will run it where that
    changes what runs (ONNX Runtime's fusion of a quantized graph); ``feeds`` are real inputs for
    the one inference an ONNX model's shapes are read from (random at ``shapes`` otherwise).
    For ONNX Runtime, a ``timing_budget_s`` also times every operator with ORT's profiler on
    ``threads`` threads (``OpCost.measured_s``), for a calibration."""
    from edgekit.inputs import ResolvedInput, ShapeOrigin, random_inputs, resolve, shapes_of

    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"model {path} does not exist")
    suffix = path.suffix.lower()
    readers = {".tflite": read_tflite, ".onnx": read_onnx, ".xml": read_openvino}
    if suffix not in readers:
        raise ConfigError(
            f"cannot analyze '{path.name}': edgekit analyzes .tflite, .onnx and OpenVINO .xml",
            hint="convert the model first with: edgekit convert",
        )
    specs = model_inputs(path)
    if shapes is not None and (missing := [spec.name for spec in specs if spec.name not in shapes]):
        raise ConfigError(f"{path.name}: no shape given for input '{missing[0]}'")
    if shapes is None:
        shapes = shapes_of(resolve(specs, model=path.name))  # a size nothing fixes is an error, never 1
    if feeds is None and suffix == ".onnx":
        feeds = random_inputs(
            [ResolvedInput(s.name, s.float_dtype, tuple(shapes[s.name]), ShapeOrigin.MODEL, s.shape) for s in specs]
        )
    as_run = (
        read_onnx_as_run(path, feeds, threads=threads, timing_budget_s=timing_budget_s)
        if feeds is not None and engine == "onnxruntime"
        else None
    )
    ops, inputs, fmt = as_run or readers[suffix](path, shapes, feeds)
    return cost_of(ops, inputs, path, fmt)
