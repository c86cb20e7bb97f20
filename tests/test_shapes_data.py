from __future__ import annotations

import numpy as np

from edgekit.examples.shapes_data import CLASSES, render_dataset
from edgekit.examples.shapes_detector import SPEC, encode_targets, truth_rows
from edgekit.tasks.detection import GridSpec, detect, mean_average_precision


def test_same_seed_same_images_other_seed_other_images() -> None:
    a, boxes_a = render_dataset(20, seed=3)
    b, boxes_b = render_dataset(20, seed=3)
    c, _ = render_dataset(20, seed=4)
    assert np.array_equal(a, b) and boxes_a == boxes_b
    assert not np.array_equal(a, c)


def test_every_image_has_shapes_inside_it() -> None:
    images, annotations = render_dataset(50, seed=0)
    assert images.shape == (50, 64, 64, 3) and images.dtype == np.uint8
    for objects in annotations:
        assert 1 <= len(objects) <= 4
        for class_id, x1, y1, x2, y2 in objects:
            assert 0 <= class_id < len(CLASSES)
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64


def test_targets_decode_back_to_the_ground_truth() -> None:
    """encode_targets and the device-side decoder agree: perfect logits give mAP 1."""
    _, annotations = render_dataset(30, seed=1)
    targets = encode_targets(annotations, SPEC)
    raw = targets.copy()
    offsets = np.clip(targets[..., 0:2], 1e-4, 1 - 1e-4)
    raw[..., 0:2] = np.log(offsets / (1 - offsets))
    raw[..., 4] = np.where(targets[..., 4] > 0, 12.0, -12.0)
    raw[..., 5:] = targets[..., 5:] * 12.0
    raw = raw.reshape(len(annotations), *SPEC.grid, SPEC.channels)
    spec = GridSpec.from_dict(SPEC.to_dict())
    detections = [detect(r, spec) for r in raw]
    truth = truth_rows(annotations) * np.array([1, 1, 64, 64, 64, 64], dtype=np.float32)
    assert mean_average_precision(detections, truth, len(CLASSES))["value"] > 0.99
