"""What every example model is and what training one leaves on disk.

An example is trained on the server and written as a folder that every later stage reads:

    model.keras     the trained Keras model
    data.npz        model-ready inputs: ``calib/<input>`` (calibration split) and
                    ``test/<input>`` with ``test_labels`` (or ``test_boxes`` for detection)
    labels.txt      one class name per line, where the task has classes
    example.json    task, preprocessing, labels, metric, training time, seed, inputs, versions
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.tasks import Task

Progress = Callable[[str], None]

CALIB_PREFIX = "calib/"
TEST_PREFIX = "test/"
TEST_LABELS = "test_labels"
TEST_BOXES = "test_boxes"

# How many calibration samples an example ships: enough for int8 calibration (converters default
# to 200), small enough to keep data.npz tiny.
CALIBRATION_SAMPLES = 300


class Metric(str, Enum):
    ACCURACY = "accuracy"
    RMSE = "rmse"
    MAP50 = "map50"


@dataclass(frozen=True)
class ExampleSpec:
    """One entry of the example table: what it is and the quality it must reach."""

    name: str
    task: Task
    summary: str
    lesson: str
    metric: Metric
    floor: float
    floor_text: str
    default_epochs: int
    module: str  # imported only when trained, so listing examples never imports TensorFlow

    def meets_floor(self, metric: dict[str, Any]) -> bool:
        value = float(metric["value"])
        if self.metric is Metric.RMSE:
            # RMSE floor is relative: at least (1 - floor) better than predicting the mean.
            return value <= (1.0 - self.floor) * float(metric["baseline"])
        return value >= self.floor


@dataclass
class TrainedExample:
    """What an example's ``train`` returns, before it is written to disk."""

    model: Any  # keras.Model
    calib: dict[str, np.ndarray]
    test_inputs: dict[str, np.ndarray]
    test_labels: np.ndarray | None
    metric: dict[str, Any]
    preprocessing: dict[str, Any]
    labels: list[str] | None = None
    test_boxes: np.ndarray | None = None  # detection: rows (image, class, x1, y1, x2, y2) in 0..1
    postprocessing: dict[str, Any] | None = None
    extra_files: dict[str, str] = field(default_factory=dict)


def keras_fit(
    model: Any,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int,
    progress: Progress,
    validation_data: Any = None,
) -> None:
    """``model.fit`` with one progress line per epoch on stderr (stdout stays clean for --json)."""
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            figures = " ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            progress(f"epoch {epoch + 1}/{epochs}  {figures}  ({time.perf_counter() - self._start:.1f} s)")

    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        shuffle=True,
        validation_data=validation_data,
        callbacks=[EpochLog()],
    )


def calibration_indices(n: int, seed: int, count: int = CALIBRATION_SAMPLES) -> np.ndarray:
    """A deterministic subset of the training split for int8 calibration."""
    rng = np.random.default_rng(seed + 7919)
    return np.sort(rng.choice(n, size=min(n, count), replace=False))


def input_specs(model: Any) -> list[dict[str, Any]]:
    """Name, shape (None for the batch) and dtype of each model input."""
    specs = []
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        specs.append({"name": name, "shape": list(tensor.shape), "dtype": str(tensor.dtype).split(".")[-1]})
    return specs


def write_example(
    spec: ExampleSpec,
    trained: TrainedExample,
    folder: Path,
    *,
    seed: int,
    epochs: int,
    train_seconds: float,
) -> dict[str, Any]:
    """Write the example folder's files into ``folder``; returns the example.json document."""
    import keras
    import tensorflow as tf

    trained.model.save(folder / "model.keras")
    arrays: dict[str, Any] = {}
    for name, array in trained.calib.items():
        arrays[CALIB_PREFIX + name] = array
    for name, array in trained.test_inputs.items():
        arrays[TEST_PREFIX + name] = array
    if trained.test_labels is not None:
        arrays[TEST_LABELS] = trained.test_labels
    if trained.test_boxes is not None:
        arrays[TEST_BOXES] = trained.test_boxes
    np.savez_compressed(folder / "data.npz", **arrays)

    if trained.labels:
        (folder / "labels.txt").write_text("\n".join(trained.labels) + "\n")
    for filename, text in trained.extra_files.items():
        (folder / filename).write_text(text)

    document: dict[str, Any] = {
        "name": spec.name,
        "task": spec.task.value,
        "preprocessing": trained.preprocessing,
        "labels": trained.labels,
        "metric": trained.metric,
        "train_seconds": round(train_seconds, 2),
        "floor": {"text": spec.floor_text, "met": spec.meets_floor(trained.metric)},
        "postprocessing": trained.postprocessing,
        "inputs": input_specs(trained.model),
        "data": {
            "calibration_samples": int(next(iter(trained.calib.values())).shape[0]),
            "test_samples": int(next(iter(trained.test_inputs.values())).shape[0]),
            "keys": sorted(arrays),
        },
        "seed": seed,
        "epochs": epochs,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (folder / "example.json").write_text(json.dumps(document, indent=2) + "\n")
    return document
