"""Task metrics on model outputs, and how far an artifact is from its source.

Accuracy and mAP are fractions (higher is better) and their drop is in percentage points.
RMSE is an error (lower is better): its "drop" is the relative increase in percent, so one
``--max-drop`` budget reads the same way for every task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.data import Dataset
from edgekit.manifest import GridPostprocessing
from edgekit.tasks import CLASSIFICATION_TASKS
from edgekit.tasks.detection import GridSpec, detect, mean_average_precision


@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float


def classes_of(task: str, output: np.ndarray) -> np.ndarray:
    """Predicted class per sample for a classifier's output."""
    if task == "binary-classification" or output.shape[-1] == 1:
        return (output.reshape(len(output), -1)[:, 0] >= 0.5).astype(np.int64)
    return np.argmax(output.reshape(len(output), -1), axis=1)


def task_metric(
    task: str, output: np.ndarray, data: Dataset, postprocessing: GridPostprocessing | None
) -> MetricResult | None:
    """The example's metric on one output array, or None when the data has no labels for it."""
    if task in CLASSIFICATION_TASKS and data.labels is not None:
        return MetricResult("accuracy", float(np.mean(classes_of(task, output) == data.labels.reshape(-1))))
    if task == "regression" and data.labels is not None:
        error = output.reshape(len(output), -1)[:, 0] - data.labels.reshape(-1)
        return MetricResult("rmse", float(np.sqrt(np.mean(error**2))))
    if task == "detection" and data.boxes is not None and postprocessing:
        spec = GridSpec.from_dict(postprocessing.model_dump())
        detections = [detect(raw, spec, score_threshold=0.01) for raw in output]
        height, width = spec.image_size
        truth = data.boxes * np.array([1, 1, width, height, width, height], dtype=np.float32)
        return MetricResult("map50", mean_average_precision(detections, truth, spec.num_classes)["value"])
    return None


def metric_drop(name: str, source: float, artifact: float) -> float:
    """How much worse the artifact is: points for fractions, percent increase for RMSE."""
    if name == "rmse":
        return (artifact - source) / source * 100.0 if source > 0 else 0.0
    return (source - artifact) * 100.0


def parity(task: str | None, reference: list[np.ndarray], artifact: list[np.ndarray]) -> dict[str, Any]:
    """Per output max |error| and SNR in dB; top-1 agreement for classifiers."""
    per_output = []
    for ref, art in zip(reference, artifact, strict=True):
        ref64, art64 = ref.astype(np.float64).reshape(len(ref), -1), art.astype(np.float64).reshape(len(art), -1)
        noise = float(np.sum((ref64 - art64) ** 2))
        signal = float(np.sum(ref64**2))
        # Identical outputs have infinite SNR; JSON has no infinity, so cap at a telling 200 dB.
        snr = 200.0 if noise == 0 else min(200.0, 10 * math.log10(signal / noise) if signal > 0 else -200.0)
        scale = float(np.max(np.abs(ref64))) or 1.0
        per_output.append(
            {
                "max_abs_error": float(np.max(np.abs(ref64 - art64))),
                "relative_max_error": float(np.max(np.abs(ref64 - art64)) / scale),
                "snr_db": round(snr, 2),
            }
        )
    agreement = None
    if task in CLASSIFICATION_TASKS:
        agreement = float(np.mean(classes_of(task, reference[0]) == classes_of(task, artifact[0])))
    return {
        "top1_agreement": agreement,
        "max_abs_error": max(p["max_abs_error"] for p in per_output),
        "relative_max_error": max(p["relative_max_error"] for p in per_output),
        "snr_db": min(p["snr_db"] for p in per_output),
        "outputs": per_output,
    }
