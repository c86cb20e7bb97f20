"""Pricing: one set of formulas for every format (MACs, parameters, bytes, activation memory).

Operators whose inputs are all constants (weight dequantization, shape arithmetic) are folded
at load time by every runtime, so they cost nothing here and their outputs count as weights.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgekit.predict.graph.ir import (
    CLASS_OF_KIND,
    COMPUTE_CLASSES,
    DEQUANTIZING,
    GraphCost,
    Op,
    OpClass,
    OpCost,
    Tensor,
)


def op_class_of(op: Op) -> OpClass:
    kind = op.kind.upper().rsplit(".", 1)[-1]  # com.microsoft.FusedConv prices as a FusedConv
    op_class = CLASS_OF_KIND.get(kind, OpClass.UNKNOWN)
    if op_class is OpClass.CONV and _is_depthwise(op):
        return OpClass.DEPTHWISE
    return op_class


def _is_depthwise(op: Op) -> bool:
    kind = op.kind.upper().rsplit(".", 1)[-1]
    group = int(op.attrs.get("group", 1))
    if kind in ("CONV", "QLINEARCONV", "CONVINTEGER", "FUSEDCONV") and group > 1:
        weights = weight(op)
        return weights is not None and len(weights.shape) >= 2 and weights.shape[1] == 1
    if kind == "CONV_2D":
        # A grouped TFLite convolution of one input channel per group (Keras Conv2D(groups=C), as
        # ConvNeXt writes its 7×7 depthwise layers): [O, kh, kw, 1] over C > 1 input channels.
        # XNNPACK runs it through its depthwise kernels, at their per-MAC cost.
        weights = weight(op)
        data = [t for t in op.inputs if not t.constant]
        channels = data[0].shape[-1] if data and data[0].shape else 1
        return weights is not None and len(weights.shape) == 4 and weights.shape[3] == 1 and channels > 1
    if kind == "GROUPCONVOLUTION":
        weights = weight(op)  # [G, O/G, I/G, kh, kw]
        return weights is not None and len(weights.shape) == 5 and weights.shape[1] == 1 and weights.shape[2] == 1
    return False


def weight(op: Op) -> Tensor | None:
    """The weight tensor of a convolution or matmul: its constant input with rank ≥ 2."""
    kind = op.kind.upper().rsplit(".", 1)[-1]
    if kind == "QLINEARCONV" and len(op.inputs) > 3:
        return op.inputs[3]
    if kind == "TRANSPOSE_CONV" and len(op.inputs) > 1:
        return op.inputs[1]
    constants = [t for t in op.inputs if t.constant and len(t.shape) >= 2]
    if constants:
        return constants[0]
    return op.inputs[1] if len(op.inputs) > 1 else None


def _macs(op: Op, op_class: OpClass) -> int:
    out = op.outputs[0] if op.outputs else None
    out_elems = out.elements if out is not None else 0
    kind = op.kind.upper()
    weights = weight(op)
    w = weights.shape if weights is not None else ()
    if op_class is OpClass.DEPTHWISE:
        if kind in ("DEPTHWISE_CONV_2D", "CONV_2D") and len(w) == 4:  # [1, kh, kw, C*m]; grouped [O, kh, kw, 1]
            return out_elems * w[1] * w[2]
        if len(w) >= 3:  # ONNX [C, 1, kh, kw]; OpenVINO [G, 1, 1, kh, kw]
            return out_elems * math.prod(w[-2:])
        return out_elems
    if op_class is OpClass.CONV:
        if kind in ("TRANSPOSE_CONV", "CONVTRANSPOSE", "CONVOLUTIONBACKPROPDATA", "GROUPCONVOLUTIONBACKPROPDATA"):
            data = [t for t in op.inputs if not t.constant]
            in_elems = data[-1].elements if data else out_elems
            per_input = math.prod(w) // max(1, (w[-1] if kind == "TRANSPOSE_CONV" else w[0])) if w else 1
            return in_elems * per_input
        if kind == "CONV_2D" and len(w) == 4:  # [O, kh, kw, I]
            return out_elems * w[1] * w[2] * w[3]
        if kind == "GROUPCONVOLUTION" and len(w) == 5:  # [G, O/G, I/G, kh, kw]
            return out_elems * math.prod(w[2:])
        if len(w) >= 3:  # ONNX/OpenVINO [O, I/g, kh, kw]
            return out_elems * math.prod(w[1:])
        return out_elems
    if op_class is OpClass.MATMUL:
        if kind in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", "LSTMSEQUENCE"):
            return _recurrent_macs(op, gates=4)
        if kind in ("GRU", "GRUSEQUENCE"):
            return _recurrent_macs(op, gates=3)
        if kind in ("RNN", "UNIDIRECTIONAL_SEQUENCE_RNN", "RNNSEQUENCE"):
            return _recurrent_macs(op, gates=1)
        if kind == "FULLY_CONNECTED" and len(w) == 2:  # [O, I]
            return out_elems * w[1]
        if weights is not None and weights.constant and len(w) == 2:  # ONNX/OpenVINO [K, N], or [N, K] transposed
            transposed_b = bool(op.attrs.get("transB") or op.attrs.get("transpose_b"))
            return out_elems * (w[1] if transposed_b else w[0])
        first = op.inputs[0].shape if op.inputs else ()
        transposed = bool(op.attrs.get("transA") or op.attrs.get("transpose_a") or op.attrs.get("adj_x"))
        depth = (first[-2] if transposed and len(first) >= 2 else first[-1]) if first else 1
        return out_elems * depth
    if op_class is OpClass.POOL:
        data = [t for t in op.inputs if not t.constant]
        return data[0].elements if data else out_elems
    return out_elems


def _recurrent_macs(op: Op, *, gates: int) -> int:
    """Per step and gate: hidden × (input + hidden) MACs."""
    data = [t for t in op.inputs if not t.constant]
    out = op.outputs[0].shape if op.outputs else ()
    if not data or len(data[0].shape) < 2 or not out:
        return op.outputs[0].elements if op.outputs else 0
    hidden = out[-1]
    features = data[0].shape[-1]
    steps = math.prod(out[:-1])  # batch × time (× directions)
    return steps * gates * hidden * (features + hidden)


def price(op: Op) -> OpCost:
    op_class = op_class_of(op)
    known = op_class is not OpClass.UNKNOWN
    params = sum(t.elements for t in op.inputs if t.constant)
    return OpCost(
        kind=op.kind,
        op_class=op_class,
        macs=_macs(op, op_class) if known else 0,
        params=params,
        bytes_read=sum(t.bytes for t in op.inputs),
        bytes_written=sum(t.bytes for t in op.outputs),
        out_shape=op.outputs[0].shape if op.outputs else (),
        known=known,
        delegated=not op.attrs.get("undelegated", False),
        float_path=bool(op.attrs.get("float_path", False)) and op_class in COMPUTE_CLASSES,
        generic_path=bool(op.attrs.get("generic_kernel", False)) and op_class is OpClass.DEPTHWISE,
        scalar_path=bool(op.attrs.get("scalar_kernel", False)) and op_class is OpClass.POOL,
        measured_s=op.attrs.get("measured_s"),
        channels=_channels(op),
        family=_family(op, op_class),
    )


def _channels(op: Op) -> int:
    shape = op.outputs[0].shape if op.outputs else ()
    if len(shape) < 3:
        return 0
    return int(shape[-1] if op.attrs.get("channels_last") else shape[1])


# Activations that cost a polynomial or a table lookup per element, not one instruction.
_ACTIVATIONS = {
    kind.upper()
    for kind in (
        "LOGISTIC TANH EXP LOG SQRT RSQRT POW DIV HARD_SWISH ELU GELU SOFTMAX LOG_SOFTMAX SIGMOID HARDSIGMOID "
        "HARDSWISH HSWISH HSIGMOID SWISH MISH ERF SOFTPLUS DIVIDE POWER RECIPROCAL LOCAL_RESPONSE_NORMALIZATION "
        "L2_NORMALIZATION NORMALIZEL2 MVN LAYERNORMALIZATION INSTANCENORMALIZATION QLINEARSIGMOID QLINEARSOFTMAX "
        "QUICKGELU"
    ).split()
}


# A matmul by a constant weight over this many rows or more (a dense layer applied at every
# position of a feature map, as ConvNeXt and transformers write their pointwise layers) runs
# through the same GEMM kernels as a 1×1 convolution, at their per-MAC cost; with fewer rows
# (a classifier head at batch 1) it is a matrix-vector product, 7× dearer per MAC on the
# machine this was found on.
GEMM_ROWS = 8
_RECURRENT = set(
    "UNIDIRECTIONAL_SEQUENCE_LSTM BIDIRECTIONAL_SEQUENCE_LSTM LSTM LSTMSEQUENCE GRU GRUSEQUENCE RNN "
    "UNIDIRECTIONAL_SEQUENCE_RNN RNNSEQUENCE".split()
)


def _is_gemm(op: Op) -> bool:
    """A matmul by a constant weight over at least ``GEMM_ROWS`` rows."""
    kind = op.kind.upper().rsplit(".", 1)[-1]
    weights = weight(op)
    out = op.outputs[0].shape if op.outputs else ()
    if kind in _RECURRENT or weights is None or not weights.constant or len(weights.shape) != 2 or not out:
        return False
    rows = math.prod(out[:-1]) if len(out) > 1 else 1
    return rows >= GEMM_ROWS


def _family(op: Op, op_class: OpClass) -> str:
    if op_class is OpClass.MATMUL and _is_gemm(op):
        return OpClass.CONV.value
    if op_class is not OpClass.ELEMENTWISE:
        return op_class.value
    if op.kind.upper().rsplit(".", 1)[-1] in _ACTIVATIONS:
        return "activation"
    data = [t for t in op.inputs if t.elements > 1]
    if len(data) > 1 and len({t.elements for t in data}) > 1:
        return "broadcast"
    return "elementwise"


def _fold_constants(ops: list[Op]) -> list[Op]:
    """Drop operators whose inputs are all constant; their outputs become constants."""
    folded: dict[str, Tensor] = {}
    kept: list[Op] = []
    for op in ops:
        inputs = [folded.get(t.name, t) for t in op.inputs]
        if inputs and all(t.constant for t in inputs) and not op.attrs.get("runs"):
            # A dequantized weight is stored at its quantized width: keep that as its size.
            stored = inputs[0] if op.kind.upper() in DEQUANTIZING else None
            for t in op.outputs:
                source = stored or t
                folded[t.name] = Tensor(t.name, t.shape, source.itemsize, source.dtype, True)
            continue
        kept.append(Op(op.kind, inputs, op.outputs, op.attrs))
    return kept


def peak_activation_bytes(ops: list[Op], graph_inputs: list[Tensor]) -> int:
    """Largest sum of live activation tensors over the execution order (what an arena must hold)."""
    first: dict[str, int] = {t.name: 0 for t in graph_inputs}
    last: dict[str, int] = {}
    size: dict[str, int] = {t.name: t.bytes for t in graph_inputs}
    for index, op in enumerate(ops):
        for t in op.outputs:
            first.setdefault(t.name, index)
            size[t.name] = t.bytes
        for t in op.inputs:
            if not t.constant:
                last[t.name] = index
    end = len(ops)
    peak = 0
    for index in range(max(1, len(ops))):
        live = sum(size[name] for name, start in first.items() if start <= index <= last.get(name, end))
        peak = max(peak, live)
    return peak


def _precision(ops: list[Op], fmt: str) -> str:
    kinds = {op.kind.upper() for op in ops}
    compute = [op for op in ops if op_class_of(op) in COMPUTE_CLASSES]
    if kinds & {"DYNAMICQUANTIZELINEAR", "MATMULINTEGER", "CONVINTEGER"}:
        return "dynamic"
    if fmt == "onnx" and "QUANTIZELINEAR" in kinds:
        return "int8"
    if fmt == "openvino" and "FAKEQUANTIZE" in kinds:
        return "int8"
    activations = [t.dtype for op in compute for t in op.inputs if not t.constant]
    weights = [w.dtype for op in compute if (w := weight(op)) is not None]
    if any(d in ("int8", "uint8") for d in activations):
        return "int8"
    if any(d in ("int8", "uint8") for d in weights):
        return "dynamic"
    if fmt == "tflite" and "DEQUANTIZE" in kinds and any(op.inputs and op.inputs[0].dtype == "float16" for op in ops):
        return "fp16"
    if any(d == "float16" for d in activations):
        return "fp16"
    return "fp32"


def cost_of(ops: list[Op], graph_inputs: list[Tensor], path: Path, fmt: str) -> GraphCost:
    precision = _precision(ops, fmt)
    live_ops = _fold_constants(ops)
    costs = [price(op) for op in live_ops]
    weights: dict[str, Tensor] = {}
    for op in live_ops:
        for t in op.inputs:
            if t.constant:
                weights[t.name] = t
    return GraphCost(
        path=str(path),
        format=fmt,
        precision=precision,
        partitions=max((int(op.attrs.get("partitions", 0)) for op in ops), default=0),
        ops=costs,
        params=sum(t.elements for t in weights.values()),
        weight_bytes=sum(t.bytes for t in weights.values()),
        peak_activation_bytes=peak_activation_bytes(live_ops, graph_inputs),
    )
