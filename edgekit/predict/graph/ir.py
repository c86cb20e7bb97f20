"""The neutral form every model format is read into: operators, tensors, and what each costs."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Shapes = dict[str, tuple[int, ...]]


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

CLASS_OF_KIND: dict[str, OpClass] = {}


def _register(op_class: OpClass, kinds: str) -> None:
    for kind in kinds.split():
        CLASS_OF_KIND[kind.upper()] = op_class


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

DEQUANTIZING = {"DEQUANTIZE", "DEQUANTIZELINEAR", "CONVERT"}

# Graph plumbing that is not an operator at run time.
STRUCTURAL = {"PARAMETER", "RESULT", "CONSTANT"}


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
    # True: a pooling operator ONNX Runtime runs through a scalar loop over 8-bit data (outside its
    # channels-last kernels): an order of magnitude dearer per element than its other pools.
    scalar_path: bool = False
    # Seconds the runtime's own profiler measured this operator take (median of several runs), where
    # the graph was read with its operators timed (a calibration); None otherwise.
    measured_s: float | None = None
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
