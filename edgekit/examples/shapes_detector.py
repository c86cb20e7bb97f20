"""shapes-detector: the object-detection lesson, a small single-scale YOLO-style detector.

A 64×64 RGB image goes through four conv blocks to an 8×8 grid; each cell has two anchor
boxes, and each anchor predicts (tx, ty, tw, th, objectness, 3 class logits). The head stays
raw: decoding and non-maximum suppression happen outside the model (edgekit.tasks.detection), so a
quantized model keeps float boxes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.examples.base import Progress, TrainedExample, calibration_indices, keras_fit
from edgekit.examples.shapes_data import CLASSES, render_dataset
from edgekit.tasks.detection import GridSpec, detect, mean_average_precision

INPUT_NAME = "image"
IMAGE_SIZE = 64
SPEC = GridSpec(
    image_size=(IMAGE_SIZE, IMAGE_SIZE),
    grid=(8, 8),
    anchors=((14.0, 14.0), (26.0, 26.0)),
    num_classes=len(CLASSES),
)
TRAIN_IMAGES, TEST_IMAGES, CALIB_IMAGES = 3000, 400, 200
# Low threshold for the metric: mAP integrates the whole precision-recall curve.
METRIC_SCORE_THRESHOLD = 0.01

# Loss weights, as in YOLOv1/v2: boxes count more than the many empty cells.
BOX_WEIGHT, NO_OBJECT_WEIGHT = 5.0, 0.5


def encode_targets(annotations: list[list[tuple[int, float, float, float, float]]], spec: GridSpec) -> np.ndarray:
    """Per image (rows, cols, anchors, 5 + C) targets: σ-space offsets, log scales, object flag, one-hot."""
    rows, cols = spec.grid
    anchors = np.asarray(spec.anchors, dtype=np.float32)
    stride_y, stride_x = spec.stride
    targets = np.zeros((len(annotations), rows, cols, len(anchors), 5 + spec.num_classes), dtype=np.float32)
    for i, objects in enumerate(annotations):
        for class_id, x1, y1, x2, y2 in objects:
            w, h = x2 - x1, y2 - y1
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            col = min(int(cx / stride_x), cols - 1)
            row = min(int(cy / stride_y), rows - 1)
            # The anchor whose shape overlaps the box best owns it.
            inter = np.minimum(anchors[:, 0], w) * np.minimum(anchors[:, 1], h)
            anchor = int(np.argmax(inter / (anchors[:, 0] * anchors[:, 1] + w * h - inter)))
            targets[i, row, col, anchor, 0] = cx / stride_x - col
            targets[i, row, col, anchor, 1] = cy / stride_y - row
            targets[i, row, col, anchor, 2] = np.log(w / anchors[anchor, 0])
            targets[i, row, col, anchor, 3] = np.log(h / anchors[anchor, 1])
            targets[i, row, col, anchor, 4] = 1.0
            targets[i, row, col, anchor, 5 + class_id] = 1.0
    return targets


def grid_loss(spec: GridSpec):  # noqa: ANN201 - returns a Keras loss function
    from keras import ops

    rows, cols = spec.grid
    anchors, classes = len(spec.anchors), spec.num_classes

    def loss(y_true, y_pred):  # noqa: ANN001, ANN202
        pred = ops.reshape(y_pred, (-1, rows, cols, anchors, 5 + classes))
        true = ops.reshape(y_true, (-1, rows, cols, anchors, 5 + classes))
        has_object = true[..., 4]
        xy = ops.sum(ops.square(ops.sigmoid(pred[..., 0:2]) - true[..., 0:2]), axis=-1)
        wh = ops.sum(ops.square(pred[..., 2:4] - true[..., 2:4]), axis=-1)
        box = BOX_WEIGHT * ops.sum(has_object * (xy + wh), axis=(1, 2, 3))
        object_bce = ops.binary_crossentropy(has_object, pred[..., 4], from_logits=True)
        objectness = ops.sum(object_bce * (has_object + NO_OBJECT_WEIGHT * (1.0 - has_object)), axis=(1, 2, 3))
        class_ce = ops.categorical_crossentropy(true[..., 5:], pred[..., 5:], from_logits=True)
        classification = ops.sum(has_object * class_ce, axis=(1, 2, 3))
        return box + objectness + classification

    return loss


def build_model(spec: GridSpec = SPEC) -> Any:
    import keras
    from keras import layers

    def block(x, filters: int, pool: bool):  # noqa: ANN001, ANN202
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        return layers.MaxPooling2D()(x) if pool else x

    inputs = keras.Input(shape=(*spec.image_size, 3), name=INPUT_NAME)
    x = block(inputs, 16, pool=True)  # 32×32
    x = block(x, 32, pool=True)  # 16×16
    x = block(x, 64, pool=True)  # 8×8
    x = block(x, 64, pool=False)
    x = block(x, 64, pool=False)
    outputs = layers.Conv2D(spec.channels, 1, name="grid_head")(x)
    return keras.Model(inputs, outputs, name="shapes_detector")


def evaluate_map(raw_outputs: np.ndarray, truth_boxes: np.ndarray, spec: GridSpec = SPEC) -> dict:
    """mAP@0.5 of raw head outputs against ground truth rows (image, class, x1, y1, x2, y2) in 0..1."""
    detections = [detect(raw, spec, score_threshold=METRIC_SCORE_THRESHOLD) for raw in raw_outputs]
    height, width = spec.image_size
    truth_pixels = truth_boxes * np.array([1, 1, width, height, width, height], dtype=np.float32)
    return mean_average_precision(detections, truth_pixels, spec.num_classes, iou_threshold=0.5)


def truth_rows(annotations: list[list[tuple[int, float, float, float, float]]], spec: GridSpec = SPEC) -> np.ndarray:
    height, width = spec.image_size
    rows = [
        (i, c, x1 / width, y1 / height, x2 / width, y2 / height)
        for i, objects in enumerate(annotations)
        for c, x1, y1, x2, y2 in objects
    ]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 6)


def train(epochs: int, seed: int, progress: Progress) -> TrainedExample:
    import keras

    images, annotations = render_dataset(TRAIN_IMAGES + TEST_IMAGES, seed, IMAGE_SIZE, IMAGE_SIZE)
    x = images.astype(np.float32) / 255.0
    x_train, x_test = x[:TRAIN_IMAGES], x[TRAIN_IMAGES:]
    train_annotations, test_annotations = annotations[:TRAIN_IMAGES], annotations[TRAIN_IMAGES:]
    targets = encode_targets(train_annotations, SPEC).reshape(TRAIN_IMAGES, *SPEC.grid, SPEC.channels)
    progress(
        f"data: {TRAIN_IMAGES} training and {TEST_IMAGES} test images of {IMAGE_SIZE}×{IMAGE_SIZE}, "
        f"{sum(len(a) for a in annotations)} shapes"
    )

    model = build_model()
    # Train through a twin that shares the layers: the saved model then carries no custom loss,
    # so any Keras (and every converter) loads it without edgekit installed.
    trainer = keras.Model(model.inputs, model.outputs)
    trainer.compile(optimizer=keras.optimizers.Adam(2e-3), loss=grid_loss(SPEC))
    keras_fit(trainer, x_train, targets, epochs=epochs, batch_size=32, progress=progress)

    raw = model.predict(x_test, verbose=0)
    truth = truth_rows(test_annotations)
    result = evaluate_map(raw, truth)
    return TrainedExample(
        model=model,
        calib={INPUT_NAME: x_train[calibration_indices(TRAIN_IMAGES, seed, CALIB_IMAGES)]},
        test_inputs={INPUT_NAME: x_test},
        test_labels=None,
        test_boxes=truth,
        metric={
            "name": "map50",
            "value": round(result["value"], 4),
            "per_class": {CLASSES[c]: round(v, 4) for c, v in result["per_class"].items()},
        },
        labels=list(CLASSES),
        preprocessing={
            "kind": "image",
            "layout": "NHWC",
            "size": [IMAGE_SIZE, IMAGE_SIZE],
            "color": "rgb",
            "resize": "linear",
            "scale": 1.0 / 255.0,
            "offset": 0.0,
            "dtype": "float32",
        },
        postprocessing=SPEC.to_dict(),
    )
