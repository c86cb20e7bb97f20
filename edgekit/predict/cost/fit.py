"""Fitting the cost model to measurements, and how well a fit holds on what it did not see.

Two fits, one idea: published references rescale the prior per engine and precision (few
figures, whole networks); a calibration fits every coefficient by non-negative least squares
on this machine's own timings. Both are judged by leaving one measurement out at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.predict.cost.prior import (
    DEFAULT_PARALLEL_FRACTION,
    FEW_REFERENCES_BAND,
    MIN_BAND,
    amdahl,
    clock_for,
    compute_precision,
    prior_coefficients,
)
from edgekit.predict.graph.features import TERMS, Features
from edgekit.predict.profiles import DeviceProfile, Reference
from edgekit.predict.profiles.references import reference_features

PRIOR_WEIGHT = 0.01  # how hard a calibration leans on the prior where the data says little
# Terms whose price differs by orders of magnitude between runtimes (XNNPACK's generic path for
# large depthwise kernels; ONNX Runtime's per-channel GEMMs for a depthwise convolution):
# the prior, one depthwise rate for all, must not hold them back.
LOOSE_TERMS = {
    "large_depthwise_macs": 0.001,
    "depthwise_tail_macs": 0.001,
    "generic_depthwise_macs": 0.001,
    "generic_depthwise_channels": 0.001,
}


# ---------------------------------------------------------------------------------------------
# fitting to published references


@dataclass(frozen=True)
class ReferenceFit:
    """The prior rescaled to a profile's references: one scale per (engine, precision), and
    Amdahl's parallel fraction when the references span thread counts."""

    processor: str
    scales: dict[tuple[str, str], float]
    parallel_fraction: float
    count: int
    engines: tuple[str, ...]

    def scale_for(self, engine: str, precision: str) -> tuple[float, str]:
        if (engine, precision) in self.scales:
            return self.scales[(engine, precision)], f"{engine} {precision} references"
        same_engine = [v for (e, _), v in self.scales.items() if e == engine]
        if same_engine:
            return _geomean(same_engine), f"{engine} references of other precisions"
        return _geomean(list(self.scales.values())), f"{'/'.join(self.engines)} references ({engine} not measured)"

    def seconds(self, prior_s: float, engine: str, precision: str, threads: int) -> float:
        factor = amdahl(threads, self.parallel_fraction) if self.processor == "cpu" else 1.0
        return prior_s * self.scale_for(engine, precision)[0] * factor


def _geomean(values: list[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def arithmetic_of(ref: Reference) -> str:
    """The arithmetic a reference's kernels ran at: what its engine chose where the profile says
    (ncnn runs fp32 models in fp16 on cores that have it), else what its precision runs at."""
    return ref.arithmetic or compute_precision(ref.precision, ref.processor)


def _reference_prior_seconds(profile: DeviceProfile, ref: Reference) -> float:
    """The prior's one-thread seconds for a reference's model, at the clock it ran at."""
    precision = arithmetic_of(ref)
    features = reference_features(ref.model, precision)
    clock = ref.clock_ghz or clock_for(profile, ref.threads)
    return float(prior_coefficients(profile, ref.processor, precision, clock) @ features.vector())


def fit_references(profile: DeviceProfile, refs: list[Reference], processor: str) -> ReferenceFit | None:
    refs = [r for r in refs if r.processor == processor]
    if not refs:
        return None
    return _fit(refs, [_reference_prior_seconds(profile, r) for r in refs], processor)


def _fit(refs: list[Reference], priors: list[float], processor: str) -> ReferenceFit:
    """Scales and parallel fraction for ``refs``, whose prior seconds are ``priors``."""

    def log_ratios(fraction: float) -> dict[tuple[str, str], list[float]]:
        groups: dict[tuple[str, str], list[float]] = {}
        for ref, prior in zip(refs, priors, strict=True):
            factor = amdahl(ref.threads, fraction) if processor == "cpu" else 1.0
            key = (ref.engine, arithmetic_of(ref))
            groups.setdefault(key, []).append(math.log(ref.latency_ms / 1000.0 / (prior * factor)))
        return groups

    fraction = DEFAULT_PARALLEL_FRACTION
    if processor == "cpu" and len({r.threads for r in refs}) > 1:
        # The fraction that makes each group's measured / prior ratios most alike.
        def spread(f: float) -> float:
            return sum(float(np.var(v)) * len(v) for v in log_ratios(f).values())

        fraction = float(min(np.linspace(0.3, 0.99, 70), key=spread))
    scales = {key: float(math.exp(sum(v) / len(v))) for key, v in log_ratios(fraction).items()}
    return ReferenceFit(
        processor=processor,
        scales=scales,
        parallel_fraction=fraction,
        count=len(refs),
        engines=tuple(sorted({r.engine for r in refs})),
    )


def leave_one_reference_out(profile: DeviceProfile, processor: str = "cpu") -> list[dict[str, Any]]:
    """Each reference predicted by the profile fitted without it."""
    refs = [r for r in profile.references if r.processor == processor]
    if len(refs) < 2:
        return []  # nothing left to fit once the one reference is out
    priors = [_reference_prior_seconds(profile, r) for r in refs]
    rows = []
    for index, ref in enumerate(refs):
        fit = _fit(refs[:index] + refs[index + 1 :], priors[:index] + priors[index + 1 :], processor)
        predicted = fit.seconds(priors[index], ref.engine, arithmetic_of(ref), ref.threads) * 1000.0
        rows.append(
            {
                "model": ref.model,
                "engine": ref.engine,
                "precision": ref.precision,
                "arithmetic": arithmetic_of(ref),
                "threads": ref.threads,
                "measured_ms": ref.latency_ms,
                "predicted_ms": round(predicted, 3),
                "error": round(predicted / ref.latency_ms - 1.0, 4),
            }
        )
    return rows


def band_from_references(profile: DeviceProfile, processor: str, engine: str) -> tuple[float, float]:
    """10th–90th percentile of measured / predicted over the leave-one-out predictions, from the
    same engine's references when there are enough of them."""
    rows = leave_one_reference_out(profile, processor)
    same = [r for r in rows if r["engine"] == engine]
    rows = same if len(same) >= 4 else rows
    if len(rows) < 4:
        return FEW_REFERENCES_BAND
    ratios = np.array([r["measured_ms"] / r["predicted_ms"] for r in rows])
    low, high = float(np.quantile(ratios, 0.1)), float(np.quantile(ratios, 0.9))
    return min(low, 1 - MIN_BAND), max(high, 1 + MIN_BAND)


# ---------------------------------------------------------------------------------------------
# fitting to this machine's measurements


@dataclass
class Point:
    model: str
    engine: str
    precision: str
    threads: int
    features: Features
    measured_ms: float
    network: bool = False  # a whole architecture, not a one-term synthetic graph: it sets the level
    # Each operator's cost terms and the seconds the runtime's own profiler measured it take (ONNX
    # Runtime): where a calibration has them, the terms are priced on the operators.
    operators: tuple[tuple[np.ndarray, float], ...] = ()


def fit(points: list[Point], prior: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Non-negative least squares on relative error, with a weak pull towards ``prior``, then one
    scale so that the whole networks among ``points`` are right on (geometric) average. Returns
    the coefficients and the 10th/90th percentiles of measured / predicted.

    Where the points carry their operators' profiled times (ONNX Runtime), the rows are the
    operators, thousands of them across every calibration graph, each priced on its own terms.
    Otherwise they are the whole graphs: the synthetic graphs, small and in cache, set what each
    term costs relative to the others. Either way the level is what whole networks show (the
    profiler's times leave out the executor's work between operators; left to the least squares
    alone, whole graphs came out 15–25 % slower than predicted on every runtime)."""
    points = [p for p in points if p.measured_ms > 0]
    operators = [op for p in points for op in p.operators]
    if operators:
        coefficients = _fit_rows(*_operator_rows(operators, prior), prior)
    else:
        rows = np.array([p.features.vector() * prior / (p.measured_ms / 1000.0) for p in points])
        coefficients = _fit_rows(rows, np.ones(len(points)), prior)
    networks = [p.measured_ms / 1000.0 / float(coefficients @ p.features.vector()) for p in points if p.network]
    if networks:
        coefficients = coefficients * float(np.exp(np.mean(np.log(networks))))
    ratios = [p.measured_ms / 1000.0 / float(coefficients @ p.features.vector()) for p in points]
    return coefficients, float(np.quantile(ratios, 0.1)), float(np.quantile(ratios, 0.9))


# ORT's profiler counts whole microseconds: a shorter operator is read as this long.
SHORTEST_OPERATOR_S = 0.5e-6


def _operator_rows(operators: list[tuple[np.ndarray, float]], prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row per operator, in units of the prior, on relative error weighted by the square root
    of the operator's time: a long operator's time is the better measured (the profiler's own
    microsecond of bookkeeping is a smaller part of it) and counts for more of a network's."""
    seconds = np.array([max(t, SHORTEST_OPERATOR_S) for _, t in operators])
    weights = np.sqrt(seconds / np.median(seconds))
    rows = np.array([x * prior for x, _ in operators]) / seconds[:, None] * weights[:, None]
    return rows, weights


def _fit_rows(rows: np.ndarray, targets: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The coefficients (seconds per unit of each term) that best fit ``rows`` (in units of the
    prior) to ``targets``, each term pulled gently towards the prior."""
    from scipy.optimize import nnls

    pull = np.array([LOOSE_TERMS.get(t, PRIOR_WEIGHT) for t in TERMS])
    scaled, _ = nnls(np.vstack([rows, np.diag(pull)]), np.concatenate([targets, pull]))
    return scaled * prior


BAND_COVERAGE = 0.8  # a band is the 10th to the 90th percentile of what a new model measures


def prediction_interval(ratios: list[float]) -> tuple[float, float]:
    """Where measured / predicted of a model not yet seen falls, 8 times in 10, judged from the
    ``ratios`` of a few models each predicted by a fit made without it: Student's t on their logs,
    widened for the mean's own uncertainty (sqrt(1 + 1/n)). Six ratios' own 10th and 90th
    percentiles are nearly their smallest and largest, and too narrow for the next model."""
    from scipy.stats import t

    logs = np.log(ratios)
    n = len(logs)
    half = float(t.ppf(0.5 + BAND_COVERAGE / 2, n - 1)) * float(np.std(logs, ddof=1)) * math.sqrt(1 + 1 / n)
    centre = float(np.mean(logs))
    return math.exp(centre - half), math.exp(centre + half)


def leave_one_out(points: list[Point], prior: np.ndarray) -> dict[str, float]:
    """Each model predicted by a fit made without it: how well the fit holds on a model it has not seen."""
    errors = {}
    for i, point in enumerate(points):
        rest = points[:i] + points[i + 1 :]
        if len(rest) < 2 or point.measured_ms <= 0:
            continue
        coefficients, _, _ = fit(rest, prior)
        predicted_ms = float(coefficients @ point.features.vector()) * 1000.0
        errors[point.model] = round(predicted_ms / point.measured_ms - 1.0, 4)
    return errors
