"""What one `edgekit convert` is asked, what it shares between its steps and checks, and what each rung makes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import (
    DEFAULT_CALIBRATION_SAMPLES,
    Dataset,
)
from edgekit.formats import Format, Precision, SourceKind
from edgekit.inputs import ResolvedInput, ShapeRequest
from edgekit.manifest import ModelDescription
from edgekit.runtimes import Runtime

Progress = Callable[[str], None]


EXAMPLE_DATA = "data.npz"


# Parity without labeled data runs on this many random inputs: a smoke test of the graph, kept
# small because the Keras reference runs eagerly (32 MobileNetV2 inputs cost ~2 s of a ~5 s conversion).
RANDOM_PARITY_SAMPLES = 8


@dataclass
class ConvertRequest:
    source: Path
    target: Format
    precision: Precision | None  # None: climb the ladder (--quant auto)
    calib: Path | None = None
    eval: Path | None = None
    max_drop: float | None = None
    out: Path | None = None
    force: bool = False
    allow_flex: bool = False
    calib_samples: int = DEFAULT_CALIBRATION_SAMPLES
    # Image preprocessing given on the command line; overrides the example's and is recorded.
    preprocessing: dict[str, Any] | None = None
    # The task for a model with no example.json or manifest (classification, regression, …).
    task: str | None = None
    # --shape: the input sizes to check the artifact at; the artifact is fixed at them.
    shapes: ShapeRequest = field(default_factory=lambda: ShapeRequest({}))
    labels: list[str] | None = None  # class names for a model with no example.json or manifest


@dataclass
class Candidate:
    """One converted artifact, staged, with its figures."""

    precision: Precision
    staged: Path
    files: list[Path]
    steps: list[str]
    seconds: float
    size_bytes: int = 0
    parity: dict[str, Any] = field(default_factory=dict)
    metric: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # tensor specs as the runtime sees them
    outputs: list[dict[str, Any]] = field(default_factory=list)
    layout: dict[str, Any] = field(default_factory=dict)  # axes a converter moved (onnx2tf's NHWC)

    @property
    def passed(self) -> bool:
        return self.gate is None or bool(self.gate["passed"])


@dataclass
class Context:
    """What every step and check of one `convert` shares."""

    request: ConvertRequest
    kind: SourceKind
    description: ModelDescription
    keras_model: Any
    reference: Runtime
    calibration: Dataset | None
    evaluation: Dataset
    reference_outputs: list[np.ndarray]
    reference_metric: Any
    resolved: list[ResolvedInput] = field(default_factory=list)
    ladder: list[Precision] = field(default_factory=list)  # the precisions to try, in order
    notes: list[str] = field(default_factory=list)

    @property
    def is_detector(self) -> bool:
        return self.description.task == "detection"
