"""ONNX Runtime's reader: the graph ORT's CPU provider optimizes a model into and runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.predict.graph.ir import Op, Tensor
from edgekit.predict.graph.onnx_reader import ONNX_DTYPE, ONNX_ITEMSIZE
from edgekit.quiet import silenced_stderr

_FLOAT_COMPUTE = {"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm"}
_PROFILE_ITEMSIZE = {"float": 4, "float16": 2, "double": 8, "uint8": 1, "int8": 1, "int16": 2, "int32": 4,
                     "int64": 8, "bool": 1}  # fmt: skip
_PROFILE_DTYPE = {"float": "float32", "double": "float64"}


# Profiled inferences before the ones an operator's time is taken from (first-touch allocations).
TIMING_WARMUP_RUNS = 2
MIN_TIMED_RUNS = 3
MAX_TIMED_RUNS = 100  # an operator's median is settled by then: a fast graph stops before its budget


def read_onnx_as_run(
    path: Path, feeds: dict[str, np.ndarray], *, threads: int = 1, timing_budget_s: float = 0.0
) -> tuple[list[Op], list[Tensor], str] | None:
    """The graph ONNX Runtime's CPU provider runs for ``path``: the one it optimizes itself, with
    every operator's shapes from one profiled inference.

    With a ``timing_budget_s``, the profiled inferences go on for that long (at least
    MIN_TIMED_RUNS after TIMING_WARMUP_RUNS, at most MAX_TIMED_RUNS) on ``threads`` threads, and
    every operator carries the median time ORT's profiler measured it take (``measured_s``): what
    a calibration fits the cost of each operator to, where the whole graph's time would only
    price the sum.

    A quantized (QDQ) model is not run as written: ORT fuses dequantize → conv → quantize into
    QLinearConv only where it has an int8 kernel for the pattern, runs the rest as float
    convolutions between (de)quantize nodes, and dequantizes their weights on every run
    (MobileNetV3-Small: two thirds of its MACs). A float model loses its batch normalisations,
    gains fused activations and, on x86, runs most convolutions in a blocked layout. Pricing the
    written graph prices work that is not done and misses work that is. None where onnxruntime
    is missing or the model will not run on random inputs: the graph is then priced as written."""
    import importlib.util
    import json
    import tempfile

    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return None
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekit-ort-") as folder:
        options = ort.SessionOptions()
        # Level "all", as edgekit's ONNX Runtime runtime (and ORT by default) runs a model: on
        # x86 it adds the blocked (NCHWc) layout and NHWC int8 kernels, which change what a
        # convolution costs. The graph is this machine's; another CPU may get a different one.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "profile")
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            # A model ORT refuses is priced as written; its complaint (and the profiler's about
            # a session that never loaded) would only come before edgekit's own verdict.
            with silenced_stderr():
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                _profiled_runs(session, {i.name: feeds[i.name] for i in session.get_inputs()}, timing_budget_s)
                events = json.loads(Path(session.end_profiling()).read_text())
                del session
            optimized = onnx.load(options.optimized_model_filepath, load_external_data=False)
        except Exception:  # noqa: BLE001 - without ORT's view, the graph is priced as written
            return None
    node_events = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    shapes = {event["name"].removesuffix("_kernel_time"): event["args"] for event in node_events}
    durations: dict[str, list[float]] = {}
    for event in node_events:
        durations.setdefault(event["name"].removesuffix("_kernel_time"), []).append(event["dur"] / 1e6)
    graph = optimized.graph
    # A quantized model keeps at least its input's QuantizeLinear, or runs QLinear kernels.
    quantized = any(node.op_type == "QuantizeLinear" or node.op_type.startswith("QLinear") for node in graph.node)
    constants = {init.name for init in graph.initializer}
    known: dict[str, Tensor] = {}
    for init in graph.initializer:
        known[init.name] = Tensor(init.name, tuple(init.dims), ONNX_ITEMSIZE.get(init.data_type, 4),
                                  ONNX_DTYPE.get(init.data_type, "float32"), True)  # fmt: skip

    def described(name: str, described_as: dict[str, list[int]] | None) -> Tensor:
        if name in known:
            return known[name]
        if not described_as:
            return Tensor(name, (), 4, "float32")
        dtype, dims = next(iter(described_as.items()))
        shape = tuple(d if d > 0 else 1 for d in dims)
        tensor = Tensor(name, shape, _PROFILE_ITEMSIZE.get(dtype, 4), _PROFILE_DTYPE.get(dtype, dtype))
        known[name] = tensor
        return tensor

    ops = []
    for node in graph.node:
        args = shapes.get(node.name)
        if args is None:
            continue  # not run (folded away, or an optional branch)
        ins = [n for n in node.input if n]
        outs = [n for n in node.output if n]
        in_shapes = args.get("input_type_shape", [])
        out_shapes = args.get("output_type_shape", [])
        attrs: dict[str, Any] = {
            a.name: onnx.helper.get_attribute_value(a)
            for a in node.attribute
            if a.name in ("group", "transA", "transB")
        }
        if quantized and node.op_type in _FLOAT_COMPUTE:
            attrs["float_path"] = True
        if node.op_type == "Conv" and node.domain in ("", "ai.onnx"):
            # ORT's plain Conv: its blocked-layout kernels are com.microsoft.nchwc.Conv; a
            # depthwise one left here goes through the generic grouped path.
            attrs["generic_kernel"] = True
        if node.domain == "com.microsoft" and node.op_type.startswith(("QLinear", "Nhwc")):
            # ORT's NHWC int8 kernels; QLinearAveragePool takes either layout and says which.
            attrs["channels_last"] = node.op_type != "QLinearAveragePool" or bool(
                next((a.i for a in node.attribute if a.name == "channels_last"), 0)
            )
        if _runs_scalar_pool(node, in_shapes, attrs):
            attrs["scalar_kernel"] = True
        if timing_budget_s > 0 and len(durations.get(node.name, ())) > TIMING_WARMUP_RUNS:
            attrs["measured_s"] = float(np.median(durations[node.name][TIMING_WARMUP_RUNS:]))
        # ORT dequantizes a float convolution's weights on every run: not a constant to fold.
        attrs["runs"] = True
        ops.append(
            Op(
                node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}",
                [described(n, in_shapes[i] if i < len(in_shapes) else None) for i, n in enumerate(ins)],
                [described(n, out_shapes[i] if i < len(out_shapes) else None) for i, n in enumerate(outs)],
                attrs,
            )
        )
    if not ops:
        return None
    inputs = [known[i.name] for i in graph.input if i.name in known and i.name not in constants]
    return ops, inputs, "onnx"


def _profiled_runs(session: Any, inputs: dict[str, np.ndarray], budget_s: float) -> None:
    """One inference; with a budget, warm-up runs and then timed runs until the budget is spent."""
    import time

    session.run(None, inputs)
    if budget_s <= 0:
        return
    for _ in range(TIMING_WARMUP_RUNS - 1):
        session.run(None, inputs)
    end = time.perf_counter() + budget_s
    timed = 0
    while timed < MIN_TIMED_RUNS or (time.perf_counter() < end and timed < MAX_TIMED_RUNS):
        session.run(None, inputs)
        timed += 1


_EIGHT_BIT = ("int8", "uint8")


def _runs_scalar_pool(node: Any, in_shapes: list[dict[str, list[int]]], attrs: dict[str, Any]) -> bool:
    """A pooling operator ORT runs through a scalar loop over 8-bit data: a MaxPool or AveragePool
    of the default domain on int8/uint8 (kept between quantize and dequantize, outside the NHWC
    rewrite), or a QLinearAveragePool in NCHW. 8–20 ns an output on the machine this was found on,
    against 0.1–0.3 ns an input element for the float and channels-last pools."""
    if node.op_type == "QLinearAveragePool":
        return not attrs.get("channels_last")
    if node.domain in ("", "ai.onnx") and node.op_type in ("MaxPool", "AveragePool") and in_shapes:
        return next(iter(in_shapes[0]), "") in _EIGHT_BIT
    return False
