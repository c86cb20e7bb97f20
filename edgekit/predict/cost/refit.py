"""Folding a device's own measurements into its profile, and what that changed.

The refit profile is the old one with the measurements added (``DeviceProfile.measurements``);
its predictions are the old fit corrected by them (``predictor.measured_correction``). How much
that helps is judged on runs the correction did not see: each measurement predicted by the
refit profile without it, beside what the old profile predicted.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.predict.cost.predictor import cpu_seconds
from edgekit.predict.graph.features import Features
from edgekit.predict.profiles import DeviceProfile, Measurement


@dataclass(frozen=True)
class RefitRow:
    model: str
    engine: str
    precision: str
    threads: int
    measured_ms: float
    before_ms: float  # the old profile's prediction
    after_ms: float  # the refit profile's, made without this measurement

    @property
    def error_before(self) -> float:
        return self.before_ms / self.measured_ms - 1.0

    @property
    def error_after(self) -> float:
        return self.after_ms / self.measured_ms - 1.0


def refit(profile: DeviceProfile, measurements: list[Measurement], name: str) -> DeviceProfile:
    """A new profile ``name``: ``profile`` with ``measurements`` added (exact repeats once)."""
    kept = list(profile.measurements)
    for measurement in measurements:
        if measurement not in kept:
            kept.append(measurement)
    return profile.model_copy(update={"name": name, "measurements": kept})


def _predicted_ms(profile: DeviceProfile, m: Measurement) -> float:
    features = Features.from_dict({**m.features, "precision": m.precision})
    return cpu_seconds(profile, m.engine, m.precision, m.threads, features) * 1000.0


def held_out_rows(before: DeviceProfile, after: DeviceProfile) -> list[RefitRow]:
    """Each of ``after``'s new measurements: what ``before`` predicted, and what ``after``
    predicts when that one measurement is left out of it."""
    rows = []
    for index, m in enumerate(after.measurements):
        if m in before.measurements:
            continue
        rest = after.measurements[:index] + after.measurements[index + 1 :]
        without = after.model_copy(update={"measurements": rest})
        rows.append(
            RefitRow(
                model=m.model,
                engine=m.engine,
                precision=m.precision,
                threads=m.threads,
                measured_ms=m.latency_ms,
                before_ms=_predicted_ms(before, m),
                after_ms=_predicted_ms(without, m),
            )
        )
    return rows
