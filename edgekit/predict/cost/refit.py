"""Folding a device's own measurements into its profile, and what that changed.

The refit profile is the old one with the measurements added (``DeviceProfile.measurements``);
its predictions are the old fit corrected by them (``predictor.measured_correction``). How much
that helps is judged on runs the correction did not see: each measurement predicted by the
refit profile without any run of its model, beside what the old profile predicted.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.predict.cost.predictor import correction_of, cpu_seconds, measured_ratio
from edgekit.predict.profiles import DeviceProfile, Measurement


@dataclass(frozen=True)
class RefitRow:
    model: str
    engine: str
    precision: str
    threads: int
    measured_ms: float
    before_ms: float  # the old profile's prediction
    after_ms: float | None  # the refit profile's without any run of this model (None: no other run to go by)

    @property
    def error_before(self) -> float:
        return self.before_ms / self.measured_ms - 1.0

    @property
    def error_after(self) -> float | None:
        return None if self.after_ms is None else self.after_ms / self.measured_ms - 1.0


def refit(profile: DeviceProfile, measurements: list[Measurement], name: str) -> DeviceProfile:
    """A new profile ``name``: ``profile`` with ``measurements`` added (exact repeats once)."""
    kept = list(profile.measurements)
    for measurement in measurements:
        if measurement not in kept:
            kept.append(measurement)
    return profile.model_copy(update={"name": name, "measurements": kept})


def held_out_rows(before: DeviceProfile, after: DeviceProfile) -> list[RefitRow]:
    """Each of ``after``'s new measurements: what ``before`` predicted, and what ``after``
    predicts with every run of the same model left out of it (another thread count or day of
    the same model would say too much about it)."""
    rated = [(m, r) for m in after.measurements if (r := measured_ratio(after, m)) is not None]
    rows = []
    for m, ratio in rated:
        if m in before.measurements:
            continue
        others = [(o, r) for o, r in rated if o.model != m.model]
        correction = correction_of(others, m.engine, m.precision, m.threads)
        base_ms = m.latency_ms / ratio  # the fit alone, without measurements
        rows.append(
            RefitRow(
                model=m.model,
                engine=m.engine,
                precision=m.precision,
                threads=m.threads,
                measured_ms=m.latency_ms,
                before_ms=cpu_seconds(before, m.engine, m.precision, m.threads, m.graph_features()) * 1000.0,
                after_ms=None if correction is None else base_ms * correction[0],
            )
        )
    return rows
