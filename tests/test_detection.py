from __future__ import annotations

import numpy as np
import pytest

from edgekit.tasks.detection import Detections, GridSpec, box_iou, decode_grid, detect, mean_average_precision

SPEC = GridSpec(image_size=(64, 64), grid=(8, 8), anchors=((14.0, 14.0), (26.0, 26.0)), num_classes=3)


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def head_with(objects: list[tuple[int, int, int, float, float, float, float, int]]) -> np.ndarray:
    """Raw head with every objectness very low except the given (row, col, anchor, ...) entries."""
    head = np.zeros((8, 8, 2, 8), dtype=np.float32)
    head[..., 4] = -12.0
    for row, col, anchor, fx, fy, w, h, cls in objects:
        head[row, col, anchor, 0] = logit(fx)
        head[row, col, anchor, 1] = logit(fy)
        head[row, col, anchor, 2] = np.log(w / SPEC.anchors[anchor][0])
        head[row, col, anchor, 3] = np.log(h / SPEC.anchors[anchor][1])
        head[row, col, anchor, 4] = 8.0
        head[row, col, anchor, 5 + cls] = 10.0
    return head.reshape(8, 8, 16)


def test_decoding_is_sigma_plus_cell_and_anchor_times_exp() -> None:
    boxes, scores = decode_grid(head_with([(2, 5, 1, 0.5, 0.25, 20.0, 10.0, 2)]), SPEC)
    best = int(np.argmax(scores.max(axis=1)))
    # centre x = (0.5 + 5) * 8 = 44, centre y = (0.25 + 2) * 8 = 18
    np.testing.assert_allclose(boxes[best], [34.0, 13.0, 54.0, 23.0], atol=1e-4)
    assert int(np.argmax(scores[best])) == 2
    assert scores[best, 2] > 0.99


def test_detect_returns_each_object_once() -> None:
    head = head_with([(2, 5, 1, 0.5, 0.5, 20, 20, 0), (6, 1, 0, 0.5, 0.5, 12, 12, 1)])
    found = detect(head, SPEC)
    assert len(found) == 2
    assert sorted(found.classes.tolist()) == [0, 1]


def test_nms_removes_duplicates_of_one_object() -> None:
    # Two anchors of neighbouring cells predict nearly the same box.
    head = head_with([(2, 5, 1, 0.9, 0.5, 20, 20, 0), (2, 6, 1, 0.0 + 0.1, 0.5, 20, 20, 0)])
    assert len(detect(head, SPEC)) == 1


def test_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    head = head_with([(2, 5, 1, 0.9, 0.5, 20, 20, 0), (2, 6, 1, 0.1, 0.5, 20, 20, 1)])
    assert len(detect(head, SPEC)) == 2


def test_box_iou() -> None:
    iou = box_iou(np.array([0, 0, 10, 10.0]), np.array([[0, 0, 10, 10.0], [5, 0, 15, 10.0], [20, 20, 30, 30.0]]))
    np.testing.assert_allclose(iou, [1.0, 1 / 3, 0.0])


def test_map_perfect_and_wrong_detections() -> None:
    truth = np.array([[0, 0, 0, 0, 10, 10], [1, 1, 20, 20, 40, 40]], dtype=np.float32)
    perfect = [
        Detections(np.array([[0, 0, 10, 10.0]]), np.array([0.9]), np.array([0])),
        Detections(np.array([[20, 20, 40, 40.0]]), np.array([0.8]), np.array([1])),
    ]
    assert mean_average_precision(perfect, truth, 3)["value"] == pytest.approx(1.0)
    shifted = [
        Detections(np.array([[30, 30, 40, 40.0]]), np.array([0.9]), np.array([0])),
        Detections(np.array([[20, 20, 40, 40.0]]), np.array([0.8]), np.array([0])),  # wrong class
    ]
    assert mean_average_precision(shifted, truth, 3)["value"] == pytest.approx(0.0)


def test_map_counts_a_duplicate_as_a_false_positive() -> None:
    truth = np.array([[0, 0, 0, 0, 10, 10]], dtype=np.float32)
    doubled = [Detections(np.array([[0, 0, 10, 10.0], [0, 0, 10, 10.0]]), np.array([0.9, 0.8]), np.array([0, 0]))]
    result = mean_average_precision(doubled, truth, 3)
    assert result["value"] == pytest.approx(1.0)  # recall 1 reached at precision 1 first
    missed = [Detections(np.array([[0, 0, 10, 10.0]]), np.array([0.9]), np.array([0]))]
    two_truths = np.array([[0, 0, 0, 0, 10, 10], [0, 0, 30, 30, 40, 40]], dtype=np.float32)
    assert mean_average_precision(missed, two_truths, 3)["value"] == pytest.approx(0.5)


def test_spec_round_trips_through_its_dict() -> None:
    assert GridSpec.from_dict(SPEC.to_dict()) == SPEC
