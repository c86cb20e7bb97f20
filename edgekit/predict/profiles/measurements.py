"""What a device measured of itself: `edgekit bench --record FILE` appends runs, one JSON object
per line, and `edgekit profiles refit` folds them into a profile.

A line holds what the cost model needs to use the run without the model file: the graph's cost
terms, the engine, the arithmetic, the threads and the median latency; and the profile it was
predicted with and what that predicted (for the reader: a refit judges the profile as it predicts
now, by its fit before floors and delegate fallbacks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from edgekit.errors import DataError, InputNotFoundError
from edgekit.outputs import atomic_file
from edgekit.predict.profiles.schema import Measurement


class RecordedRun(Measurement):
    """One line of a measurements file."""

    device: str = Field(..., description="the profile the run was predicted with (the device it ran on)")
    predicted_ms: float | None = Field(None, description="what that profile predicted for it")

    def measurement(self) -> Measurement:
        return Measurement.model_validate(self.model_dump(include=set(Measurement.model_fields)))


def recorded_run(
    model: str, engine: str, latency_ms: float, predicted: dict[str, Any], graph: Any, source: str
) -> RecordedRun:
    """A measurements-file line: the run, the graph's cost terms, and what the profile predicted
    (``predicted``: a Prediction's ``to_dict()``)."""
    import datetime

    from edgekit.predict.graph.features import Features

    return RecordedRun(
        model=model,
        engine=engine,
        precision=predicted["precision"],
        threads=predicted["threads"],
        latency_ms=latency_ms,
        features=Features.from_graph(graph).cost_terms(),
        measured_on=datetime.date.today().isoformat(),
        source=source,
        device=predicted["device"],
        predicted_ms=predicted["latency_ms"],
    )


def append_runs(path: Path, runs: list[RecordedRun]) -> None:
    """Add ``runs`` at the end of ``path`` (created if missing), all or none: the file is
    rewritten under a temporary name and renamed, so an interrupted bench leaves it as it was."""
    existing = read_runs_text(path) if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    lines = "".join(json.dumps(run.model_dump(mode="json"), sort_keys=True) + "\n" for run in runs)
    with atomic_file(path, force=True) as staging:
        staging.write_text(existing + lines)


def check_record_file(path: Path) -> None:
    """A ``--record`` file must be writable here and, where it exists, a measurements file:
    checked before any timing, so a wrong one fails now and not after the runs."""
    from edgekit.outputs import check_output_file

    check_output_file(path, force=True)
    if path.is_file():
        read_runs_text(path)


def read_runs_text(path: Path, what: str = "--record ", hint: str = "give another --record file") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what}{path} is not a measurements file (not UTF-8 text)", hint=hint) from exc


def read_runs(path: Path) -> list[RecordedRun]:
    if not path.is_file():
        raise InputNotFoundError(
            f"measurements file {path} does not exist",
            hint="record runs with edgekit bench MODEL --device NAME --record FILE",
        )
    text = read_runs_text(path, "", "give the file edgekit bench --record wrote")
    runs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            runs.append(RecordedRun.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "(the line)"
            raise DataError(
                f"{path}:{number}: not a recorded run: {key}: {first['msg']}",
                hint="the file takes the lines edgekit bench --record writes",
            ) from exc
    if not runs:
        raise DataError(f"measurements file {path} holds no runs", hint="record some with edgekit bench --record")
    return runs
