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

import math
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ModelError, require_extra
from edgekit.quiet import XNNPACK_NOTICE, filtered_stderr, silenced_stderr
from edgekit.runtimes.base import describe_shapes, first_line


class OpClass(str, Enum):
    """Operator classes the predictor gives their own efficiency."""

    CONV = "conv"  # dense convolution, including grouped
    DEPTHWISE = "depthwise"
    MATMUL = "matmul"  # fully connected, matmul, recurrent cells
    ELEMENTWISE = "elementwise"  # activations, arithmetic, softmax, normalisation
    POOL = "pool"  # pooling and reductions
    MEMORY = "memory"  # reshape, concat, pad, transpose, slice, gather: data movement only
    QUANT = "quant"  # (de)quantization of activations
    UNKNOWN = "unknown"


COMPUTE_CLASSES = (OpClass.CONV, OpClass.DEPTHWISE, OpClass.MATMUL)

_CLASS_OF_KIND: dict[str, OpClass] = {}


def _register(op_class: OpClass, kinds: str) -> None:
    for kind in kinds.split():
        _CLASS_OF_KIND[kind.upper()] = op_class


# Kinds are upper-cased: TFLite builtins (CONV_2D), ONNX (Conv → CONV), OpenVINO (Convolution).
_register(OpClass.CONV, "CONV_2D CONV_3D TRANSPOSE_CONV CONV CONVTRANSPOSE CONVINTEGER QLINEARCONV CONVOLUTION")
_register(OpClass.CONV, "GROUPCONVOLUTION CONVOLUTIONBACKPROPDATA GROUPCONVOLUTIONBACKPROPDATA FUSEDCONV")
_register(OpClass.DEPTHWISE, "DEPTHWISE_CONV_2D")
_register(
    OpClass.MATMUL,
    "FULLY_CONNECTED BATCH_MATMUL MATMUL GEMM MATMULINTEGER QLINEARMATMUL UNIDIRECTIONAL_SEQUENCE_LSTM "
    "BIDIRECTIONAL_SEQUENCE_LSTM LSTM GRU RNN UNIDIRECTIONAL_SEQUENCE_RNN LSTMSEQUENCE GRUSEQUENCE "
    "RNNSEQUENCE EINSUM_MATMUL QGEMM FUSEDGEMM FUSEDMATMUL MATMULINTEGERTOFLOAT",
)
_register(
    OpClass.ELEMENTWISE,
    "ADD SUB MUL DIV MAXIMUM MINIMUM RELU RELU6 RELU_N1_TO_1 RELU_0_TO_1 LEAKY_RELU PRELU LOGISTIC TANH "
    "HARD_SWISH ELU EXP LOG SQRT RSQRT SQUARE SQUARED_DIFFERENCE POW ABS NEG SIN COS FLOOR CEIL ROUND "
    "SOFTMAX LOG_SOFTMAX GELU SELECT SELECT_V2 LESS GREATER EQUAL NOT_EQUAL CAST L2_NORMALIZATION "
    "LOCAL_RESPONSE_NORMALIZATION FLOOR_DIV FLOOR_MOD "
    "CLIP SIGMOID HARDSIGMOID HARDSWISH ERF BATCHNORMALIZATION INSTANCENORMALIZATION LAYERNORMALIZATION "
    "LEAKYRELU SOFTPLUS WHERE RECIPROCAL "
    "MULTIPLY SUBTRACT DIVIDE CLAMP SWISH HSWISH HSIGMOID MISH POWER SQUAREDDIFFERENCE CONVERT NORMALIZEL2 "
    "MVN EXP_OP QLINEARADD QLINEARMUL QLINEARSIGMOID QLINEARSOFTMAX QLINEARLEAKYRELU QUICKGELU",
)
_register(
    OpClass.POOL,
    "AVERAGE_POOL_2D MAX_POOL_2D MEAN SUM REDUCE_MAX REDUCE_MIN REDUCE_PROD L2_POOL_2D ARG_MAX ARG_MIN "
    "GLOBALAVERAGEPOOL GLOBALMAXPOOL AVERAGEPOOL MAXPOOL REDUCEMEAN REDUCESUM REDUCEMAX REDUCEMIN ARGMAX "
    "AVGPOOL REDUCEL2 TOPK TOPKV2 TOPK_V2 QLINEARGLOBALAVERAGEPOOL QLINEARAVERAGEPOOL NHWCMAXPOOL",
)
_register(
    OpClass.MEMORY,
    "RESHAPE SQUEEZE EXPAND_DIMS CONCATENATION PAD PADV2 MIRROR_PAD TRANSPOSE STRIDED_SLICE SLICE SPLIT "
    "SPLIT_V PACK UNPACK GATHER GATHER_ND TILE BROADCAST_TO SPACE_TO_DEPTH DEPTH_TO_SPACE SHAPE "
    "EMBEDDING_LOOKUP RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR FILL ZEROS_LIKE REVERSE_V2 "
    "FLATTEN CONCAT UNSQUEEZE IDENTITY EXPAND RESIZE GATHERELEMENTS SCATTERND DEPTHTOSPACE SPACETODEPTH "
    "CONSTANTOFSHAPE RANGE DROPOUT "
    "SHAPEOF INTERPOLATE VARIADICSPLIT STRIDEDSLICE BROADCAST QLINEARCONCAT REORDERINPUT REORDEROUTPUT",
)
_register(OpClass.QUANT, "QUANTIZE DEQUANTIZE QUANTIZELINEAR DEQUANTIZELINEAR DYNAMICQUANTIZELINEAR FAKEQUANTIZE")

_DEQUANTIZING = {"DEQUANTIZE", "DEQUANTIZELINEAR", "CONVERT"}

# Graph plumbing that is not an operator at run time.
_STRUCTURAL = {"PARAMETER", "RESULT", "CONSTANT"}


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    itemsize: int
    dtype: str
    constant: bool = False

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def bytes(self) -> int:
        return self.elements * self.itemsize


@dataclass
class Op:
    """One operator in the neutral form every format is read into."""

    kind: str  # as the format names it (CONV_2D, Conv, Convolution)
    inputs: list[Tensor]
    outputs: list[Tensor]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OpCost:
    kind: str
    op_class: OpClass
    macs: int  # multiply-accumulates (compute classes) or element operations (the others)
    params: int
    bytes_read: int
    bytes_written: int
    out_shape: tuple[int, ...]
    known: bool = True
    delegated: bool = True  # False: the CPU delegate leaves it to the runtime's own kernels
    # True: a compute operator of a quantized graph that the runtime runs in float (ONNX Runtime
    # leaves some QDQ convolutions unfused: dequantize, float conv, quantize).
    float_path: bool = False
    # True: a depthwise convolution ONNX Runtime runs through its generic grouped convolution, one
    # GEMM per channel (outside its blocked layout, or in float in a quantized graph).
    generic_path: bool = False
    channels: int = 0  # output channels (its layout's channel dimension); 0 where it has none
    # Element-wise work splits by what a kernel does per element: cheap arithmetic, a
    # transcendental activation, or a broadcast against a differently shaped operand.
    family: str = ""

    @property
    def out_elements(self) -> int:
        return math.prod(self.out_shape) if self.out_shape else 1

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "class": self.op_class.value,
            "macs": self.macs if self.known else None,
            "params": self.params,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "out_shape": list(self.out_shape),
        }


@dataclass(frozen=True)
class ClassTotals:
    count: int = 0
    macs: int = 0
    bytes: int = 0


@dataclass
class GraphCost:
    """The analysis of one model."""

    path: str
    format: str
    precision: str  # fp32, fp16, int8, dynamic: what the compute kernels run at
    ops: list[OpCost]
    params: int
    weight_bytes: int
    peak_activation_bytes: int
    partitions: int = 0  # pieces the CPU delegate cut the graph into (TFLite; 0 when not known)

    @property
    def unknown_kinds(self) -> list[str]:
        return sorted({op.kind for op in self.ops if not op.known})

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops if op.op_class in COMPUTE_CLASSES)

    @property
    def flops(self) -> int:
        """Two FLOPs per MAC, plus one per element operation of the non-compute classes."""
        others = sum(op.macs for op in self.ops if op.known and op.op_class not in COMPUTE_CLASSES)
        return 2 * self.macs + others

    @property
    def bytes(self) -> int:
        return sum(op.bytes for op in self.ops)

    def by_class(self) -> dict[OpClass, ClassTotals]:
        totals: dict[OpClass, list[int]] = defaultdict(lambda: [0, 0, 0])
        for op in self.ops:
            entry = totals[op.op_class]
            entry[0] += 1
            entry[1] += op.macs
            entry[2] += op.bytes
        return {cls: ClassTotals(*values) for cls, values in totals.items()}

    def by_kind(self) -> list[dict[str, Any]]:
        """Operator kinds, costliest first (by MACs, then bytes)."""
        rows: dict[str, dict[str, Any]] = {}
        for op in self.ops:
            row = rows.setdefault(
                op.kind,
                {"kind": op.kind, "class": op.op_class.value, "count": 0, "macs": 0, "params": 0, "bytes": 0},
            )
            row["count"] += 1
            row["macs"] = None if not op.known else row["macs"] + op.macs
            row["params"] += op.params
            row["bytes"] += op.bytes
        return sorted(rows.values(), key=lambda r: (-(r["macs"] or 0), -r["bytes"]))

    def to_dict(self, *, ops: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.path,
            "format": self.format,
            "precision": self.precision,
            "operators": len(self.ops),
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "bytes_moved": self.bytes,
            "unknown_cost": self.unknown_kinds,
            "delegate_partitions": self.partitions,
            "undelegated": sorted({op.kind for op in self.ops if not op.delegated}),
            "by_kind": self.by_kind(),
            "by_class": {cls.value: vars(t) for cls, t in sorted(self.by_class().items())},
        }
        if ops:
            data["ops"] = [op.to_dict() for op in self.ops]
        return data


# ---------------------------------------------------------------------------------------------
# pricing: one set of formulas for every format


def op_class_of(op: Op) -> OpClass:
    kind = op.kind.upper().rsplit(".", 1)[-1]  # com.microsoft.FusedConv prices as a FusedConv
    op_class = _CLASS_OF_KIND.get(kind, OpClass.UNKNOWN)
    if op_class is OpClass.CONV and _is_depthwise(op):
        return OpClass.DEPTHWISE
    return op_class


def _is_depthwise(op: Op) -> bool:
    kind = op.kind.upper().rsplit(".", 1)[-1]
    group = int(op.attrs.get("group", 1))
    if kind in ("CONV", "QLINEARCONV", "CONVINTEGER", "FUSEDCONV") and group > 1:
        weights = _weight(op)
        return weights is not None and len(weights.shape) >= 2 and weights.shape[1] == 1
    if kind == "GROUPCONVOLUTION":
        weights = _weight(op)  # [G, O/G, I/G, kh, kw]
        return weights is not None and len(weights.shape) == 5 and weights.shape[1] == 1 and weights.shape[2] == 1
    return False


def _weight(op: Op) -> Tensor | None:
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
    weights = _weight(op)
    w = weights.shape if weights is not None else ()
    if op_class is OpClass.DEPTHWISE:
        if kind == "DEPTHWISE_CONV_2D" and len(w) == 4:  # [1, kh, kw, C*m]
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


def _family(op: Op, op_class: OpClass) -> str:
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
            stored = inputs[0] if op.kind.upper() in _DEQUANTIZING else None
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
    weights = [w.dtype for op in compute if (w := _weight(op)) is not None]
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


# ---------------------------------------------------------------------------------------------
# readers


Shapes = dict[str, tuple[int, ...]]


def model_inputs(path: Path) -> list[Any]:
    """The inputs as the model file declares them (``TensorSpec``, None for a dynamic dimension)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        require_extra("onnx", "convert", alone="onnx")
        import onnx

        from edgekit.runtimes.base import TensorSpec

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:
            raise ModelError(f"{Path(path).name} is not a readable ONNX model: {first_line(exc)}") from exc
        constants = {init.name for init in model.graph.initializer}
        specs = []
        for value in model.graph.input:
            if value.name in constants:
                continue
            kind = value.type.tensor_type
            dims = list(kind.shape.dim)
            shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
            names = tuple(d.dim_param or None for d in dims)
            dtype = "string" if kind.elem_type == 8 else _ONNX_DTYPE.get(kind.elem_type, "float32")
            specs.append(TensorSpec(value.name, shape, dtype, dim_names=names if any(names) else ()))
        return specs
    from edgekit.runtimes import load_runtime

    with load_runtime(Path(path)) as runtime:
        return list(runtime.inputs)


def analyze(
    path: Path, engine: str | None = None, shapes: Shapes | None = None, feeds: dict[str, np.ndarray] | None = None
) -> GraphCost:
    """Analyze a .tflite, .onnx or OpenVINO .xml model at the input ``shapes`` it will run at
    (edgekit.inputs resolves them; None: the model's own static shape, a dynamic batch as 1,
    anything else dynamic an error). ``engine`` names the runtime that will run it where that
    changes what runs (ONNX Runtime's fusion of a quantized graph); ``feeds`` are real inputs for
    the one inference an ONNX model's shapes are read from (random at ``shapes`` otherwise)."""
    from edgekit.errors import ConfigError, InputNotFoundError
    from edgekit.inputs import ResolvedInput, ShapeOrigin, random_inputs, resolve, shapes_of

    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"model {path} does not exist")
    suffix = path.suffix.lower()
    readers = {".tflite": _read_tflite, ".onnx": _read_onnx, ".xml": _read_openvino}
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
    as_run = _read_onnx_as_run(path, feeds) if feeds is not None and engine == "onnxruntime" else None
    ops, inputs, fmt = as_run or readers[suffix](path, shapes, feeds)
    return cost_of(ops, inputs, path, fmt)


_FLOAT_COMPUTE = {"Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm"}
_PROFILE_ITEMSIZE = {"float": 4, "float16": 2, "double": 8, "uint8": 1, "int8": 1, "int16": 2, "int32": 4,
                     "int64": 8, "bool": 1}  # fmt: skip
_PROFILE_DTYPE = {"float": "float32", "double": "float64"}


def _read_onnx_as_run(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[Op], list[Tensor], str] | None:
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
        known[init.name] = Tensor(init.name, tuple(init.dims), _ONNX_ITEMSIZE.get(init.data_type, 4),
                                  _ONNX_DTYPE.get(init.data_type, "float32"), True)  # fmt: skip

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


def _read_tflite(path: Path, shapes: Shapes, feeds: Any = None) -> tuple[list[Op], list[Tensor], str]:
    """Every tensor at the shapes LiteRT allocates for ``shapes`` (a dynamic signature's
    placeholder ``[1, 1, 1, 3]`` would price a 220-MMAC network at 5)."""
    from edgekit.runtimes.tflite import interpreter_class

    try:
        with filtered_stderr(XNNPACK_NOTICE):
            interpreter = interpreter_class()(model_path=str(path))
    except Exception as exc:
        raise ModelError(f"{path.name} is not a readable TFLite model: {first_line(exc)}") from exc
    ops_details = interpreter._get_ops_details()  # the only public-enough view of the graph
    resized = any(
        list(detail["shape"]) != list(shapes.get(detail["name"], detail["shape"]))
        for detail in interpreter.get_input_details()
    )
    try:
        _resize(interpreter, shapes)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path.name} cannot take input shapes {describe_shapes(shapes)}: {first_line(exc)}") from exc
    undelegated, partitions = _delegation(interpreter)
    if resized or not partitions:
        # Shapes from LiteRT's own kernels: inside an XNNPACK partition the tensors of a resized
        # input keep their placeholder sizes after allocation (and after invoke). Only then:
        # LiteRT 2.3's reference kernels abort (SIGABRT, uncatchable) allocating some int8 graphs
        # that XNNPACK takes, such as 150 chained int8 ADDs.
        interpreter = _allocated_without_delegate(path, shapes)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    produced = {int(i) for op in ops_details for i in op["outputs"]}
    graph_inputs = {d["index"] for d in interpreter.get_input_details()}

    def tensor(index: int) -> Tensor:
        d = details[index]
        dtype = np.dtype(d["dtype"])
        shape = tuple(int(x) for x in d["shape"])
        constant = index not in produced and index not in graph_inputs
        return Tensor(str(index), shape, dtype.itemsize, dtype.name, constant)

    ops = [
        Op(
            str(op["op_name"]),
            [tensor(int(i)) for i in op["inputs"] if int(i) >= 0],
            [tensor(int(i)) for i in op["outputs"] if int(i) >= 0],
            {
                "partitions": partitions,
                "channels_last": True,
                **({"undelegated": True} if index in undelegated else {}),
            },
        )
        for index, op in enumerate(ops_details)
    ]
    return ops, [tensor(i) for i in sorted(graph_inputs)], "tflite"


def _resize(interpreter: Any, shapes: Shapes) -> None:
    for detail in interpreter.get_input_details():
        want = list(shapes.get(detail["name"], detail["shape"]))
        if list(detail["shape"]) != want:
            interpreter.resize_tensor_input(detail["index"], want)


def _allocated_without_delegate(path: Path, shapes: Shapes) -> Any:
    """An interpreter allocated at ``shapes`` with LiteRT's own kernels: what propagates every
    tensor's shape when the delegate refused the model (or there is none)."""
    from edgekit.runtimes.tflite import interpreter_class

    Interpreter = interpreter_class()  # noqa: N806
    try:
        from ai_edge_litert.interpreter import OpResolverType

        interpreter = Interpreter(
            model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    except (ImportError, TypeError, ValueError):
        interpreter = Interpreter(model_path=str(path))
    try:
        _resize(interpreter, shapes)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{path.name} cannot be prepared at input shapes {describe_shapes(shapes)}: {first_line(exc)}",
            hint="check --shape against the sizes the model was made for",
        ) from exc
    return interpreter


def _delegation(interpreter: Any) -> tuple[set[int], int]:
    """The XNNPACK delegate's partitioning, read after allocating as LiteRT would."""
    from edgekit.runtimes.tflite import delegation

    try:
        with filtered_stderr(XNNPACK_NOTICE):
            interpreter.allocate_tensors()
        return delegation(interpreter)
    except Exception:  # noqa: BLE001 - a model the delegate refuses is analysed without delegation
        return set(), 0


_ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}
_ONNX_DTYPE = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}  # fmt: skip


def _with_input_shapes(model: Any, shapes: Shapes) -> None:
    """Write the resolved sizes into the graph's inputs, so shape inference has numbers to carry."""
    for value in model.graph.input:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        want = shapes[value.name]
        del dims[:]
        for size in want:
            dims.add().dim_value = int(size)


def _infer_shapes(model: Any) -> Any:
    """Every tensor's shape at the given input sizes. ONNX Runtime's symbolic inference follows
    computed sizes (Shape → Gather → Concat → Reshape, Resize by scales) that onnx's own inference
    leaves unknown: a Paddle text detector's 2.3 GMACs at 640×640 read as 1.2 MMACs without it."""
    import importlib.util

    from onnx import shape_inference

    if importlib.util.find_spec("onnxruntime") is not None:
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            with silenced_stderr():
                inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
            if inferred is not None:
                return inferred
        except Exception:  # noqa: BLE001 - an op it does not know: onnx's own inference next
            pass
    try:
        return shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - an op shape inference does not know: shapes stay partial
        return model


def value_dependent_outputs(path: Path, shapes: Shapes) -> list[str]:
    """Outputs whose size the input sizes do not fix (NonZero, NMS): their size follows the values.
    Known for ONNX (shape inference at the given sizes leaves them symbolic); empty elsewhere."""
    if Path(path).suffix.lower() != ".onnx":
        return []
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        return []
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - an unreadable model is reported where it is read
        return []
    _with_input_shapes(model, shapes)
    inferred = _infer_shapes(model)
    found = []
    for output in inferred.graph.output:
        dims = output.type.tensor_type.shape.dim
        if output.type.HasField("tensor_type") and any(not d.HasField("dim_value") for d in dims):
            found.append(output.name)
    return found


def _read_onnx(path: Path, shapes: Shapes, feeds: Any = None) -> tuple[list[Op], list[Tensor], str]:
    require_extra("onnx", "convert", alone="onnx")
    import onnx
    from onnx import helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path.name} is not a readable ONNX model: {first_line(exc)}") from exc
    if not model.graph.node:  # protobuf parses some garbage as an empty model
        raise ModelError(f"{path.name} is not a readable ONNX model: it has no operators", hint="is the file complete?")
    _with_input_shapes(model, shapes)
    model = _infer_shapes(model)
    graph = model.graph
    known: dict[str, tuple[tuple[int, ...], int]] = {}

    def record(value: Any) -> None:
        kind = value.type.tensor_type
        dims = tuple(d.dim_value if d.dim_value > 0 else 1 for d in kind.shape.dim)
        known[value.name] = (dims, kind.elem_type)

    for value in [*graph.input, *graph.value_info, *graph.output]:
        record(value)
    constants = {init.name for init in graph.initializer}
    for init in graph.initializer:
        known[init.name] = (tuple(init.dims), init.data_type)
    for node in graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
            for attr in node.attribute:
                if attr.name == "value":
                    known[node.output[0]] = (tuple(attr.t.dims), attr.t.data_type)

    def tensor(name: str) -> Tensor:
        shape, elem = known.get(name, ((), 1))
        return Tensor(name, shape, _ONNX_ITEMSIZE.get(elem, 4), _ONNX_DTYPE.get(elem, "float32"), name in constants)

    ops = []
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        attrs = {
            a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in ("group", "transA", "transB")
        }
        ops.append(
            Op(
                node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}",
                [tensor(n) for n in node.input if n],
                [tensor(n) for n in node.output if n],
                attrs,
            )
        )
    inputs = [tensor(v.name) for v in graph.input if v.name not in constants]
    return ops, inputs, "onnx"


def _read_openvino(path: Path, shapes: Shapes, feeds: Any = None) -> tuple[list[Op], list[Tensor], str]:
    require_extra("openvino", "convert", alone="openvino")
    import openvino as ov

    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:
        raise ModelError(f"{path.name} is not a readable OpenVINO model: {first_line(exc)}") from exc
    ports = list(model.inputs)
    port_names = [sorted(p.get_names())[0] if p.get_names() else f"input_{i}" for i, p in enumerate(ports)]
    try:
        model.reshape(
            {port: list(shapes[name]) for port, name in zip(ports, port_names, strict=True) if name in shapes}
        )
    except Exception as exc:  # OpenVINO's shape inference refusing the size
        raise ModelError(
            f"{path.name} cannot take input shapes {describe_shapes(shapes)}: {first_line(exc)}",
            hint="check --shape against the sizes the model was made for",
        ) from exc

    def tensor(output: Any, constant: bool) -> Tensor:
        shape = output.get_partial_shape()
        dims = tuple(d.get_length() if d.is_static else 1 for d in shape) if shape.rank.is_static else ()
        element = output.get_element_type()
        return Tensor(output.get_any_name() if output.get_names() else f"{id(output)}", dims,
                      max(1, element.bitwidth // 8), element.to_dtype().name, constant)  # fmt: skip

    ops: list[Op] = []
    names: dict[tuple[str, int], Tensor] = {}
    inputs: list[Tensor] = []
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        constant = kind == "Constant"
        outs = []
        for index, output in enumerate(node.outputs()):
            t = tensor(output, constant)
            t = Tensor(f"{node.get_friendly_name()}:{index}", t.shape, t.itemsize, t.dtype, constant)
            names[(node.get_friendly_name(), index)] = t
            outs.append(t)
        if kind == "Parameter":
            inputs.extend(outs)
        if kind.upper() in _STRUCTURAL:
            continue
        ins = []
        for value in node.inputs():
            source = value.get_source_output()
            ins.append(names[(source.get_node().get_friendly_name(), source.get_index())])
        attrs = {}
        if kind == "MatMul":
            attrs = {k: v for k, v in node.get_attributes().items() if k in ("transpose_a", "transpose_b")}
        ops.append(Op(kind, ins, outs, attrs))
    return ops, inputs, "openvino"
