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


def read_onnx_as_run(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[Op], list[Tensor], str] | None:
    """The graph ONNX Runtime's CPU provider runs for ``path``: the one it optimizes itself, with
    every operator's shapes from one profiled inference.

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
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        try:
            # A model ORT refuses is priced as written; its complaint (and the profiler's about
            # a session that never loaded) would only come before edgekit's own verdict.
            with silenced_stderr():
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
                events = json.loads(Path(session.end_profiling()).read_text())
                del session
            optimized = onnx.load(options.optimized_model_filepath, load_external_data=False)
        except Exception:  # noqa: BLE001 - without ORT's view, the graph is priced as written
            return None
    shapes = {
        event["name"].removesuffix("_kernel_time"): event["args"]
        for event in events
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time")
    }
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
            attrs["channels_last"] = True  # ORT's NHWC int8 kernels
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
