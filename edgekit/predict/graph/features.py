"""The few numbers of a graph that its latency is predicted from.

The cost model is additive over operators, so a whole graph is summarised by per-class sums:
MACs of dense convolutions, of depthwise convolutions and of matmuls, element operations of the
rest, bytes moved by every operator, and the operator count (each costs a dispatch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from edgekit.predict.graph.ir import GraphCost, OpClass

# The order of the cost model's coefficients; see edgekit/predict.py. Convolutions cost per MAC
# and per output element (narrow layers do few MACs per output written); element-wise work is
# split by kernel kind (one instruction, a transcendental, a broadcast), pooling and data
# movement; then bytes moved and operators dispatched. A quantized graph's compute that its runtime
# does in float has a term of its own, priced at the float rate. Depthwise convolutions with more
# than 25 taps (7×7 and up) have one too: XNNPACK has fast single-pass kernels up to 5×5 and runs
# larger ones through a generic path, 12× (fp32) to 37× (int8) slower per MAC on the machine this
# was found on, where ONNX Runtime prices them like any other depthwise MAC. ONNX Runtime's 8-bit
# pooling outside its channels-last kernels (a MaxPool between quantize and dequantize, an NCHW
# QLinearAveragePool) runs a scalar loop per output: 8–20 ns an output here, against 0.1–0.3 ns an
# input element for its float and channels-last pools; it is priced per output (`scalar_pool_outputs`).
TERMS = (
    "conv_macs",
    "conv_outputs",
    "depthwise_macs",
    "depthwise_outputs",
    "depthwise_tail_macs",
    "large_depthwise_macs",
    "matmul_macs",
    "float_macs",
    "generic_depthwise_macs",
    "generic_depthwise_channels",
    "element_ops",
    "quant_ops",
    "activation_ops",
    "broadcast_ops",
    "pool_ops",
    "scalar_pool_outputs",
    "memory_ops",
    "fallback_ops",
    "partitions",
    "bytes",
    "ops",
)


# Terms added after the first recorded runs, kits and calibrations were written: what was written
# before a term existed lacks it, and it counted as zero there (no such operator was priced apart).
LATER_TERMS = (
    "fallback_ops",
    "partitions",
    "float_macs",
    "large_depthwise_macs",
    "generic_depthwise_macs",
    "generic_depthwise_channels",
    "quant_ops",
    "depthwise_tail_macs",
    "scalar_pool_outputs",
)

LARGE_KERNEL_TAPS = 25  # 5×5: the largest depthwise kernel XNNPACK has a single-pass kernel for
CHANNEL_BLOCK = 16  # channels a depthwise kernel's vector loop takes at a time (16 int8 lanes)


@dataclass(frozen=True)
class Features:
    precision: str
    conv_macs: float
    conv_outputs: float
    depthwise_macs: float
    depthwise_outputs: float
    # MACs of the channels past the last full CHANNEL_BLOCK: ONNX Runtime's int8 depthwise kernel
    # runs them in a scalar loop (44 channels: 0.18 ns/MAC against 0.068 for 48, here).
    depthwise_tail_macs: float
    large_depthwise_macs: float  # MACs of depthwise convolutions with more than LARGE_KERNEL_TAPS taps
    matmul_macs: float
    float_macs: float  # MACs a quantized graph's runtime does in float (unfused QDQ convolutions)
    # Depthwise MACs ONNX Runtime runs through its generic grouped convolution (one small GEMM per
    # channel): a depthwise conv outside its blocked layout (channels not a multiple of its block)
    # or left in float in a quantized graph. Several times slower per MAC than its depthwise kernels.
    generic_depthwise_macs: float
    generic_depthwise_channels: float  # one small GEMM each: what it costs beyond its MACs
    element_ops: float
    quant_ops: float  # elements (de)quantized at the edges of float operators in a quantized graph
    activation_ops: float
    broadcast_ops: float
    pool_ops: float
    scalar_pool_outputs: float  # outputs of pooling ONNX Runtime runs through its scalar 8-bit loops
    memory_ops: float
    fallback_ops: float  # output elements of operators the CPU delegate leaves to slower kernels
    partitions: float  # hand-overs between the delegate and those kernels
    bytes: float
    ops: float
    unknown_ops: int
    flops: float
    weight_bytes: int
    peak_activation_bytes: int

    @classmethod
    def from_graph(cls, graph: GraphCost) -> Features:
        return features_of_ops(
            graph.ops,
            graph.precision,
            partitions=float(graph.partitions),
            flops=float(graph.flops),
            weight_bytes=graph.weight_bytes,
            peak_activation_bytes=graph.peak_activation_bytes,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Features:
        defaults = {
            **dict.fromkeys(LATER_TERMS, 0.0),
            # Not cost terms: a device's recorded run may carry only the terms.
            "unknown_ops": 0,
            "flops": 0.0,
            "weight_bytes": 0,
            "peak_activation_bytes": 0,
        }
        known = {f.name for f in fields(cls)}  # a later edgekit's extra terms are not this one's
        return cls(**{**defaults, **{k: v for k, v in data.items() if k in known}})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cost_terms(self) -> dict[str, Any]:
        """Every number of ``to_dict`` without the precision: what a recorded run keeps."""
        return {k: v for k, v in asdict(self).items() if k != "precision"}

    @property
    def macs(self) -> float:
        """Every MAC of the compute operators, whatever term prices it (what the compute floor counts)."""
        return (
            self.conv_macs + self.depthwise_macs + self.depthwise_tail_macs + self.large_depthwise_macs
            + self.matmul_macs + self.float_macs + self.generic_depthwise_macs
        )  # fmt: skip

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, term) for term in TERMS], dtype=np.float64)


def features_of_ops(
    ops: list[Any],
    precision: str,
    *,
    partitions: float = 0.0,
    flops: float = 0.0,
    weight_bytes: int = 0,
    peak_activation_bytes: int = 0,
) -> Features:
    """Features of a list of operators: a whole graph, or what falls back from a delegate."""

    def large(op: Any) -> bool:
        return op.family == OpClass.DEPTHWISE.value and op.macs > LARGE_KERNEL_TAPS * op.out_elements

    def tail(op: Any) -> float:
        """The MACs of a plain depthwise convolution's channels past its last full block."""
        if op.family != OpClass.DEPTHWISE.value or op.float_path or op.generic_path or large(op) or not op.channels:
            return 0.0
        return op.macs * (op.channels % CHANNEL_BLOCK) / op.channels

    tails = float(sum(tail(op) for op in ops if op.known))

    def total(family: str, what: str = "macs") -> float:
        chosen = [
            op
            for op in ops
            if op.known
            and op.family == family
            and not (what == "macs" and (op.float_path or op.generic_path or op.scalar_path or large(op)))
        ]
        return float(sum(op.macs if what == "macs" else op.out_elements for op in chosen))

    return Features(
        precision=precision,
        conv_macs=total(OpClass.CONV.value),
        conv_outputs=total(OpClass.CONV.value, "outputs"),
        depthwise_macs=total(OpClass.DEPTHWISE.value) - tails,
        depthwise_tail_macs=tails,
        depthwise_outputs=total(OpClass.DEPTHWISE.value, "outputs"),
        large_depthwise_macs=float(
            sum(op.macs for op in ops if op.known and not (op.float_path or op.generic_path) and large(op))
        ),
        matmul_macs=total(OpClass.MATMUL.value),
        float_macs=float(sum(op.macs for op in ops if op.known and op.float_path and not op.generic_path)),
        generic_depthwise_macs=float(sum(op.macs for op in ops if op.known and op.generic_path)),
        generic_depthwise_channels=float(sum(op.channels for op in ops if op.generic_path)),
        element_ops=total("elementwise"),
        quant_ops=total(OpClass.QUANT.value),
        activation_ops=total("activation"),
        broadcast_ops=total("broadcast"),
        pool_ops=total(OpClass.POOL.value),
        scalar_pool_outputs=float(sum(op.out_elements for op in ops if op.known and op.scalar_path)),
        memory_ops=total(OpClass.MEMORY.value),
        # A copy (concatenation, reshape) costs the same in the runtime's own kernels: only
        # computing operators left out of the delegate are priced as fallbacks.
        fallback_ops=float(sum(op.out_elements for op in ops if not op.delegated and op.family != "memory")),
        partitions=partitions,
        bytes=float(sum(op.bytes for op in ops)),
        ops=float(len(ops)),
        unknown_ops=sum(1 for op in ops if not op.known),
        flops=flops,
        weight_bytes=weight_bytes,
        peak_activation_bytes=peak_activation_bytes,
    )
