"""The hardware prior: seconds per unit of each cost term from a profile's peaks and default efficiencies."""

from __future__ import annotations

import numpy as np

from edgekit.errors import DeviceError
from edgekit.predict.graph import GraphCost
from edgekit.predict.graph.features import TERMS
from edgekit.predict.profiles import DeviceProfile

# Default efficiencies (share of peak reached) for a device with no fit of its own. They are
# the order of magnitude XNNPACK-class kernels reach on phone and board CPUs; references and
# calibration replace them.
CPU_EFFICIENCY = {
    "conv": 0.55, "output": 1.0, "depthwise": 0.18, "matmul": 0.35, "element": 0.25, "activation": 0.05,
    "fallback": 0.03, "bandwidth": 0.25,
}  # fmt: skip
GPU_EFFICIENCY = {
    "conv": 0.30, "output": 0.05, "depthwise": 0.08, "matmul": 0.15, "element": 0.05, "activation": 0.02,
    "fallback": 0.02, "bandwidth": 0.4,
}  # fmt: skip
# A scalar loop per output (ONNX Runtime's 8-bit pooling outside its vector kernels): a window's
# loads, compares or adds, and the requantization, one element at a time.
SCALAR_CYCLES_PER_OUTPUT = 30
CPU_DISPATCH_S = 3e-6  # per operator: the interpreter's call and the thread pool's fork/join
GPU_DISPATCH_S = 25e-6  # per kernel launch on a mobile GPU
DEFAULT_PARALLEL_FRACTION = 0.85
UNCALIBRATED_BAND = (0.5, 1.6)
FEW_REFERENCES_BAND = (0.7, 1.4)
MIN_BAND = 0.10


def compute_precision(precision: str, processor: str) -> str:
    """The arithmetic a model's kernels run at: fp16 and dynamic-range models run their
    matmuls in fp32 and int8 respectively on a CPU."""
    if processor == "cpu":
        return {"fp16": "fp32", "dynamic": "int8"}.get(precision, precision)
    return {"dynamic": "fp32"}.get(precision, precision)


def clock_for(profile: DeviceProfile, threads: int) -> float:
    """Clock of the slowest core a run on ``threads`` threads uses (threads go to the fastest cores)."""
    remaining = threads
    clock = profile.cpu.clusters[0].clock_ghz
    for cluster in profile.cpu.clusters:
        clock = cluster.clock_ghz
        remaining -= cluster.count
        if remaining <= 0:
            break
    return clock


def amdahl(threads: int, parallel_fraction: float) -> float:
    """Run time at ``threads`` as a share of the one-thread run time."""
    return (1.0 - parallel_fraction) + parallel_fraction / max(1, threads)


def prior_coefficients(profile: DeviceProfile, processor: str, precision: str, clock_ghz: float) -> np.ndarray:
    """Seconds per unit of each cost term (``TERMS``), from the hardware figures and default
    efficiencies."""
    if processor == "gpu":
        gpu = profile.gpu
        if gpu is None:
            raise DeviceError(f"profile {profile.name} has no GPU")
        tflops = {
            "int8": (gpu.int8_tops or gpu.fp16_tflops or gpu.fp32_tflops),
            "fp16": (gpu.fp16_tflops or gpu.fp32_tflops),
        }.get(precision, gpu.fp32_tflops)
        macs_per_s = tflops * 1e12 / 2
        float_macs_per_s = gpu.fp32_tflops * 1e12 / 2
        element_per_s = macs_per_s
        e = GPU_EFFICIENCY
        bandwidth = (gpu.bandwidth_gbs or profile.bandwidth.gbs) * 1e9
        dispatch = GPU_DISPATCH_S
    else:
        compute = profile.compute
        macs_per_s = macs_per_cycle(profile, precision) * clock_ghz * 1e9
        float_macs_per_s = macs_per_cycle(profile, "fp32") * clock_ghz * 1e9
        element_per_s = compute.vector_bits / lane_bits(profile, precision) * clock_ghz * 1e9
        e = CPU_EFFICIENCY
        bandwidth = profile.bandwidth.gbs * 1e9
        dispatch = CPU_DISPATCH_S
    per_term = {
        "conv_macs": 1 / (macs_per_s * e["conv"]),
        "conv_outputs": 1 / (element_per_s * e["output"]),
        "depthwise_macs": 1 / (macs_per_s * e["depthwise"]),
        "depthwise_outputs": 1 / (element_per_s * e["output"]),
        "depthwise_tail_macs": 1 / (macs_per_s * e["depthwise"]),
        "large_depthwise_macs": 1 / (macs_per_s * e["depthwise"]),
        "matmul_macs": 1 / (macs_per_s * e["matmul"]),
        "float_macs": 1 / (float_macs_per_s * e["depthwise"]),
        "generic_depthwise_macs": 1 / (float_macs_per_s * e["depthwise"]),
        "generic_depthwise_channels": dispatch / 50,
        "element_ops": 1 / (element_per_s * e["element"]),
        "quant_ops": 1 / (element_per_s * e["element"]),
        "activation_ops": 1 / (element_per_s * e["activation"]),
        "broadcast_ops": 1 / (element_per_s * e["element"]),
        "pool_ops": 1 / (element_per_s * e["element"]),
        "scalar_pool_outputs": SCALAR_CYCLES_PER_OUTPUT / (clock_ghz * 1e9),
        "memory_ops": 1 / (element_per_s * e["element"]),
        "fallback_ops": 1 / (element_per_s * e["fallback"]),
        "partitions": dispatch * 5,
        "bytes": 1 / (bandwidth * e["bandwidth"]),
        "ops": dispatch,
    }
    return np.array([per_term[t] for t in TERMS])


def peak_flops(profile: DeviceProfile, processor: str, precision: str, threads: int) -> float:
    if processor == "gpu" and profile.gpu is not None:
        gpu = profile.gpu
        if precision == "int8" and gpu.int8_tops:
            return gpu.int8_tops * 1e12
        if precision == "fp16" and gpu.fp16_tflops:
            return gpu.fp16_tflops * 1e12
        return gpu.fp32_tflops * 1e12
    return 2 * macs_per_cycle(profile, precision) * clock_for(profile, threads) * 1e9 * threads


def physical_floor(
    graph: GraphCost, profile: DeviceProfile, processor: str, precision: str, threads: int
) -> tuple[float, str]:
    """The fastest a device could possibly run ``graph``, in seconds, and what bounds it: every
    MAC at the peak rate of ``threads`` cores (MACs ÷ (threads × clock × MACs per cycle)), or
    the weights read once at the memory bandwidth."""
    if processor == "gpu" and profile.gpu is not None:
        compute = 2 * graph.macs / peak_flops(profile, processor, precision, 1)
    else:
        compute = graph.macs / (threads * clock_for(profile, threads) * 1e9 * macs_per_cycle(profile, precision))
    memory = graph.weight_bytes / (profile.bandwidth.gbs * 1e9)
    return (compute, "compute") if compute >= memory else (memory, "memory")


def lane_bits(profile: DeviceProfile, precision: str) -> int:
    """Width of one SIMD lane the element-wise kernels use at ``precision`` (fp16 only where native)."""
    if precision == "int8":
        return 8
    if precision == "fp16" and profile.compute.fp16_macs_per_cycle:
        return 16
    return 32


def macs_per_cycle(profile: DeviceProfile, precision: str) -> float:
    """Peak MACs per core and cycle at ``precision``; fp16 without native support runs as fp32."""
    compute = profile.compute
    if precision == "int8":
        return compute.int8_macs_per_cycle
    if precision == "fp16" and compute.fp16_macs_per_cycle:
        return compute.fp16_macs_per_cycle
    return compute.fp32_macs_per_cycle
