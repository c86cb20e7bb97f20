"""The few numbers of a graph that its latency is predicted from.

The cost model is additive over operators, so a whole graph is summarised by per-class sums:
MACs of dense convolutions, of depthwise convolutions and of matmuls, element operations of the
rest, bytes moved by every operator, and the operator count (each costs a dispatch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.graph import GraphCost, OpClass

# The order of the cost model's coefficients; see edgekit/predict.py.
TERMS = ("conv_macs", "depthwise_macs", "matmul_macs", "element_ops", "bytes", "ops")


@dataclass(frozen=True)
class Features:
    precision: str
    conv_macs: float
    depthwise_macs: float
    matmul_macs: float
    element_ops: float
    bytes: float
    ops: float
    unknown_ops: int
    flops: float
    weight_bytes: int
    peak_activation_bytes: int

    @classmethod
    def from_graph(cls, graph: GraphCost) -> Features:
        totals = graph.by_class()

        def macs(*classes: OpClass) -> float:
            return float(sum(totals[c].macs for c in classes if c in totals))

        return cls(
            precision=graph.precision,
            conv_macs=macs(OpClass.CONV),
            depthwise_macs=macs(OpClass.DEPTHWISE),
            matmul_macs=macs(OpClass.MATMUL),
            element_ops=macs(OpClass.ELEMENTWISE, OpClass.POOL, OpClass.QUANT),
            bytes=float(graph.bytes),
            ops=float(len(graph.ops)),
            unknown_ops=sum(1 for op in graph.ops if not op.known),
            flops=float(graph.flops),
            weight_bytes=graph.weight_bytes,
            peak_activation_bytes=graph.peak_activation_bytes,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Features:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, term) for term in TERMS], dtype=np.float64)


def features_of_ops(ops: list[Any], precision: str) -> Features:
    """Features of a subset of a graph's operators (what falls back from a delegate)."""
    from edgekit.graph import OpClass as C

    def macs(*classes: C) -> float:
        return float(sum(op.macs for op in ops if op.op_class in classes))

    return Features(
        precision=precision,
        conv_macs=macs(C.CONV),
        depthwise_macs=macs(C.DEPTHWISE),
        matmul_macs=macs(C.MATMUL),
        element_ops=macs(C.ELEMENTWISE, C.POOL, C.QUANT),
        bytes=float(sum(op.bytes for op in ops)),
        ops=float(len(ops)),
        unknown_ops=sum(1 for op in ops if not op.known),
        flops=0.0,
        weight_bytes=0,
        peak_activation_bytes=0,
    )
