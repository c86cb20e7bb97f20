"""How the edge's answers differ from the server's on the same samples: the task metric per side
and its drop, top-1 agreement, output error, and per-class drift (where the confusion matrices
of the two sides differ), each left out with the reason when the task or the data cannot give it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.data import Dataset
from edgekit.errors import DataError
from edgekit.manifest import GridPostprocessing
from edgekit.tasks import CLASSIFICATION_TASKS
from edgekit.tasks.metrics import classes_of, metric_drop, parity, task_metric


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class; counts."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth.astype(int), predicted.astype(int)), 1)
    return matrix


def _class_count(task: str, output: np.ndarray, labels: np.ndarray, names: list[str] | None) -> int:
    if task == "binary-classification" or output.reshape(len(output), -1).shape[1] == 1:
        return 2
    return max(output.reshape(len(output), -1).shape[1], int(labels.max()) + 1, len(names or []))


def class_drift(
    task: str, labels: np.ndarray, server: np.ndarray, edge: np.ndarray, names: list[str] | None
) -> dict[str, Any]:
    """Per class: recall on each side and its change; the confusion matrices and their difference."""
    classes = _class_count(task, server, labels, names)
    truth = labels.reshape(-1).astype(int)
    server_classes, edge_classes = classes_of(task, server), classes_of(task, edge)
    server_cm = confusion(truth, server_classes, classes)
    edge_cm = confusion(truth, edge_classes, classes)
    # Per true class, samples whose answer differs between the sides: a swap that leaves the
    # confusion matrix unchanged still counts.
    changed = np.bincount(truth[server_classes != edge_classes], minlength=classes)
    support = server_cm.sum(axis=1)
    label_names = [names[i] if names and i < len(names) else str(i) for i in range(classes)]
    rows = []
    for i in range(classes):
        server_recall = server_cm[i, i] / support[i] if support[i] else None
        edge_recall = edge_cm[i, i] / support[i] if support[i] else None
        rows.append(
            {
                "class": label_names[i],
                "support": int(support[i]),
                "server_recall": None if server_recall is None else round(float(server_recall), 4),
                "edge_recall": None if edge_recall is None else round(float(edge_recall), 4),
                "change_pts": None if server_recall is None else round(float(edge_recall - server_recall) * 100, 2),
                "changed": int(changed[i]),
            }
        )
    return {
        "labels": label_names,
        "classes": rows,
        "server_confusion": server_cm.tolist(),
        "edge_confusion": edge_cm.tolist(),
        "difference": (edge_cm - server_cm).tolist(),
    }


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def compare_outputs(
    task: str | None,
    data: Dataset,
    server: list[np.ndarray],
    edge: list[np.ndarray],
    *,
    labels: list[str] | None = None,
    postprocessing: GridPostprocessing | None = None,
) -> dict[str, Any]:
    """Everything the report says about quality for one edge artifact against the server."""
    notes: list[str] = []
    shapes_match = len(server) == len(edge) and all(
        s.reshape(len(s), -1).shape == e.reshape(len(e), -1).shape for s, e in zip(server, edge, strict=False)
    )
    if not shapes_match:
        raise DataError(
            f"the server's outputs {[s.shape for s in server]} and the edge's {[e.shape for e in edge]} "
            "do not correspond",
            hint="compare an artifact converted from the model the server runs",
        )
    agreement = parity(task, server, edge)
    result: dict[str, Any] = {
        "top1_agreement": agreement["top1_agreement"],
        "max_abs_error": agreement["max_abs_error"],
        "mean_abs_error": float(np.mean([_mean_abs(s, e) for s, e in zip(server, edge, strict=True)])),
        "snr_db": agreement["snr_db"],
        "samples": len(data),
        "metric": None,
        "drift": None,
        "notes": notes,
    }
    if agreement["top1_agreement"] is None:
        notes.append(f"top-1 agreement applies to classifiers; this is a {task or 'model of unknown task'}")
    server_metric = task_metric(task or "", server[0], data, postprocessing)
    edge_metric = task_metric(task or "", edge[0], data, postprocessing)
    if server_metric is None or edge_metric is None:
        if task is None:
            notes.append("no metric: the task is unknown (no manifest or example.json beside the models)")
        else:
            notes.append("no metric or per-class drift: the data has no labels (test_labels in data.npz, or y)")
    else:
        result["metric"] = {
            "name": server_metric.name,
            "server": round(server_metric.value, 6),
            "edge": round(edge_metric.value, 6),
            "drop": round(metric_drop(server_metric.name, server_metric.value, edge_metric.value), 4),
            "drop_unit": "percent" if server_metric.name == "rmse" else "points",
        }
    if task in CLASSIFICATION_TASKS and data.labels is not None:
        result["drift"] = class_drift(task, data.labels, server[0], edge[0], labels)
    elif data.labels is not None:
        notes.append(f"per-class drift applies to classifiers; this is a {task or 'model of unknown task'}")
    return result
