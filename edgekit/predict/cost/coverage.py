"""Whether a prediction extrapolates beyond what the references it was fitted to cover.

A fit to published measurements is trustworthy where the model looks like the measured ones:
its cost spread over the same operator terms, at a size within their range. A model whose cost
rests on a term the references barely exercise (a network of large depthwise kernels priced
from references without any), or that is many times larger or smaller than all of them, is
predicted by extrapolation: the band widens, and the basis says on what.
"""

from __future__ import annotations

import numpy as np

from edgekit.predict.cost.fit import arithmetic_of
from edgekit.predict.cost.prior import clock_for, prior_coefficients
from edgekit.predict.graph.features import TERMS, Features
from edgekit.predict.profiles import CalibrationFit, DeviceProfile
from edgekit.predict.profiles.references import reference_features

# A term carrying this much more of the model's prior cost than of any reference's.
SHARE_MARGIN = 0.15
# A model this many times beyond the largest (or below the smallest) reference's prior cost.
SIZE_MARGIN = 3.0
# What an extrapolation does to the band: wider on both sides.
WIDENING = (0.8, 1.25)


def _contributions(coefficients: np.ndarray, features: Features) -> np.ndarray:
    return np.maximum(coefficients * features.vector(), 0.0)


def extrapolations(source: DeviceProfile, processor: str, precision: str, threads: int, model: Features) -> list[str]:
    """What about ``model`` lies outside the references of ``source`` (empty: nothing)."""
    refs = [r for r in source.references if r.processor == processor]
    if not refs:
        return []
    shares, sizes = [], []
    for ref in refs:
        arithmetic = arithmetic_of(ref)
        clock = ref.clock_ghz or clock_for(source, ref.threads)
        parts = _contributions(
            prior_coefficients(source, processor, arithmetic, clock), reference_features(ref.model, arithmetic)
        )
        if parts.sum() > 0:
            shares.append(parts / parts.sum())
            sizes.append(float(parts.sum()))
    parts = _contributions(prior_coefficients(source, processor, precision, clock_for(source, threads)), model)
    if not shares or parts.sum() <= 0:
        return []
    found = []
    share, widest = parts / parts.sum(), np.max(np.stack(shares), axis=0)
    for term, mine, most in zip(TERMS, share, widest, strict=True):
        if mine > most + SHARE_MARGIN:
            found.append(f"{mine:.0%} of its cost is {term}, at most {most:.0%} in any reference")
    size = float(parts.sum())
    if size > max(sizes) * SIZE_MARGIN:
        found.append(f"{size / max(sizes):.1f}× the largest reference")
    elif size < min(sizes) / SIZE_MARGIN:
        found.append(f"{min(sizes) / size:.1f}× smaller than the smallest reference")
    return found


def calibration_extrapolations(fit: CalibrationFit, model: Features) -> list[str]:
    """What about ``model`` lies outside what a calibration fit was measured on: a term carrying
    far more of its time than of any calibration model's, or a time far beyond theirs."""
    coefficients = np.array([fit.coefficients.get(t, 0.0) for t in TERMS])
    parts = _contributions(coefficients, model)
    if parts.sum() <= 0:
        return []
    found = []
    if fit.term_shares is not None:
        for term, mine in zip(TERMS, parts / parts.sum(), strict=True):
            most = fit.term_shares.get(term, 0.0)
            if mine > most + SHARE_MARGIN:
                found.append(f"{mine:.0%} of its time is {term}, at most {most:.0%} in any calibration model")
    times = [ms for ms in fit.points.values() if ms > 0]
    size_ms = float(parts.sum()) * 1000.0
    if times and size_ms > max(times) * SIZE_MARGIN:
        found.append(f"{size_ms / max(times):.1f}× the slowest calibration model")
    elif times and size_ms < min(times) / SIZE_MARGIN:
        found.append(f"{min(times) / size_ms:.1f}× faster than the fastest calibration model")
    return found


def term_shares(coefficients: np.ndarray, models: list[Features]) -> dict[str, float]:
    """Each term's largest share of a model's fitted time among ``models`` (a calibration's)."""
    most = np.zeros(len(TERMS))
    for x in models:
        parts = _contributions(coefficients, x)
        if parts.sum() > 0:
            most = np.maximum(most, parts / parts.sum())
    return {t: round(float(v), 4) for t, v in zip(TERMS, most, strict=True)}


def widened(band: tuple[float, float]) -> tuple[float, float]:
    return band[0] * WIDENING[0], band[1] * WIDENING[1]
