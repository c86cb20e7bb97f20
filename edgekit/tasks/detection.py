"""Grid (YOLO-style) detector post-processing and its metric, in NumPy and OpenCV only.

A device runs this after the model, so it must not need TensorFlow. The model's head is raw:
for each grid cell (row, col) and anchor a, the values ``tx, ty, tw, th, to, c_1..c_C``
(last axis, anchors outermost). Decoding is the one the course teaches:

    x = (σ(tx) + col) · stride      w = p_w · e^tw
    y = (σ(ty) + row) · stride      h = p_h · e^th
    score_k = σ(to) · softmax(c)_k

followed by per-class non-maximum suppression (``cv2.dnn.NMSBoxes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# e^tw overflows float32 past ~88; a box wider than e^8 anchors is nonsense anyway.
_MAX_LOG_SCALE = 8.0


@dataclass(frozen=True)
class GridSpec:
    """The head's geometry, stored in example.json / the manifest as ``postprocessing``."""

    image_size: tuple[int, int]  # (height, width) of the model input in pixels
    grid: tuple[int, int]  # (rows, cols)
    anchors: tuple[tuple[float, float], ...]  # (width, height) in input pixels
    num_classes: int
    score_threshold: float = 0.3
    nms_iou: float = 0.45

    @property
    def stride(self) -> tuple[float, float]:
        return (self.image_size[0] / self.grid[0], self.image_size[1] / self.grid[1])

    @property
    def channels(self) -> int:
        return len(self.anchors) * (5 + self.num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "yolo-grid",
            "image_size": list(self.image_size),
            "grid": list(self.grid),
            "anchors": [list(a) for a in self.anchors],
            "num_classes": self.num_classes,
            "score_threshold": self.score_threshold,
            "nms_iou": self.nms_iou,
            "layout": "rows, cols, anchors × (tx, ty, tw, th, objectness, class logits…)",
            "box_format": "x1, y1, x2, y2 in input pixels",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridSpec:
        return cls(
            image_size=tuple(data["image_size"]),
            grid=tuple(data["grid"]),
            anchors=tuple(tuple(a) for a in data["anchors"]),
            num_classes=int(data["num_classes"]),
            score_threshold=float(data.get("score_threshold", 0.3)),
            nms_iou=float(data.get("nms_iou", 0.45)),
        )


@dataclass(frozen=True)
class Detections:
    """Boxes (N, 4) as x1, y1, x2, y2, their scores (N,) and class ids (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_grid(raw: np.ndarray, spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw head (rows, cols, anchors·(5+C)) → boxes (K, 4) and class scores (K, C)."""
    rows, cols = spec.grid
    anchors = np.asarray(spec.anchors, dtype=np.float32)
    head = np.asarray(raw, dtype=np.float32).reshape(rows, cols, len(anchors), 5 + spec.num_classes)
    stride_y, stride_x = spec.stride
    col_index = np.arange(cols, dtype=np.float32)[None, :, None]
    row_index = np.arange(rows, dtype=np.float32)[:, None, None]
    cx = (_sigmoid(head[..., 0]) + col_index) * stride_x
    cy = (_sigmoid(head[..., 1]) + row_index) * stride_y
    w = anchors[:, 0] * np.exp(np.clip(head[..., 2], -_MAX_LOG_SCALE, _MAX_LOG_SCALE))
    h = anchors[:, 1] * np.exp(np.clip(head[..., 3], -_MAX_LOG_SCALE, _MAX_LOG_SCALE))
    objectness = _sigmoid(head[..., 4])
    logits = head[..., 5:]
    logits = logits - logits.max(axis=-1, keepdims=True)
    class_probability = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    scores = objectness[..., None] * class_probability
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    return boxes.reshape(-1, 4), scores.reshape(-1, spec.num_classes)


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, *, score_threshold: float, iou_threshold: float
) -> Detections:
    """Per-class NMS with OpenCV; every (box, class) above the threshold is a candidate."""
    import cv2

    kept_boxes, kept_scores, kept_classes = [], [], []
    for class_id in range(scores.shape[1]):
        class_scores = scores[:, class_id]
        candidates = np.flatnonzero(class_scores >= score_threshold)
        if candidates.size == 0:
            continue
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes[candidates]]
        keep = np.asarray(
            cv2.dnn.NMSBoxes(xywh, class_scores[candidates].tolist(), score_threshold, iou_threshold),
            dtype=np.int64,
        ).reshape(-1)
        chosen = candidates[keep]
        kept_boxes.append(boxes[chosen])
        kept_scores.append(class_scores[chosen])
        kept_classes.append(np.full(len(chosen), class_id, dtype=np.int64))
    if not kept_scores:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    all_scores = np.concatenate(kept_scores)
    order = np.argsort(-all_scores, kind="stable")
    return Detections(np.concatenate(kept_boxes)[order], all_scores[order], np.concatenate(kept_classes)[order])


def detect(
    raw: np.ndarray, spec: GridSpec, *, score_threshold: float | None = None, iou_threshold: float | None = None
) -> Detections:
    """Decode one image's raw head and suppress duplicates."""
    boxes, scores = decode_grid(raw, spec)
    return non_max_suppression(
        boxes,
        scores,
        score_threshold=spec.score_threshold if score_threshold is None else score_threshold,
        iou_threshold=spec.nms_iou if iou_threshold is None else iou_threshold,
    )


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) against many (N, 4), x1 y1 x2 y2."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    other_areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return intersection / np.maximum(area + other_areas - intersection, 1e-9)


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve (PASCAL VOC, all points)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def mean_average_precision(
    detections: list[Detections], truth_boxes: np.ndarray, num_classes: int, iou_threshold: float = 0.5
) -> dict[str, Any]:
    """mAP@iou over images; ``truth_boxes`` rows are (image, class, x1, y1, x2, y2) in the
    detections' coordinates. Classes with no ground truth are left out of the mean."""
    per_class: dict[int, float] = {}
    for class_id in range(num_classes):
        truth = truth_boxes[truth_boxes[:, 1] == class_id]
        if len(truth) == 0:
            continue
        truth_by_image = {int(i): truth[truth[:, 0] == i, 2:] for i in np.unique(truth[:, 0])}
        matched = {i: np.zeros(len(b), dtype=bool) for i, b in truth_by_image.items()}
        candidates = [
            (float(d.scores[k]), image, d.boxes[k])
            for image, d in enumerate(detections)
            for k in np.flatnonzero(d.classes == class_id)
        ]
        candidates.sort(key=lambda c: -c[0])
        hits = np.zeros(len(candidates))
        for n, (_, image, box) in enumerate(candidates):
            gt = truth_by_image.get(image)
            if gt is None:
                continue
            ious = box_iou(box, gt)
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold and not matched[image][best]:
                matched[image][best] = True
                hits[n] = 1
        true_positives = np.cumsum(hits)
        recall = true_positives / len(truth)
        precision = true_positives / np.arange(1, len(candidates) + 1)
        per_class[class_id] = _average_precision(recall, precision) if candidates else 0.0
    value = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return {"value": value, "per_class": per_class}
