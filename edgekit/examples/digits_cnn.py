"""digits-cnn: the MNIST lesson on scikit-learn's bundled 8×8 digits, scaled up to 28×28×1.

Conv → Pool → Conv → Pool → Flatten → Dropout → Dense → softmax over the ten digits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.examples.base import Progress, TrainedExample, calibration_indices, keras_fit

IMAGE_SIZE = 28
INPUT_NAME = "image"


def load_digits_28(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits as 28×28×1 float32 in [0, 1]; a stratified 75/25 split."""
    import cv2
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # The 8×8 images hold 0..16; as uint8 0..255 they are what a camera would give, so the
    # model's preprocessing is the usual pixel / 255.
    small = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    big = np.stack([cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR) for img in small])
    x = (big.astype(np.float32) / 255.0)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return x_train, x_test, y_train, y_test


def build_model() -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name=INPUT_NAME)
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    # 1,347 training images are few for a CNN: dropout keeps the test accuracy steady across seeds.
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(epochs: int, seed: int, progress: Progress) -> TrainedExample:
    x_train, x_test, y_train, y_test = load_digits_28(seed)
    progress(f"data: {len(x_train)} training and {len(x_test)} test images of 28×28×1")
    model = build_model()
    keras_fit(model, x_train, y_train, epochs=epochs, batch_size=32, progress=progress)
    predicted = np.argmax(model.predict(x_test, verbose=0), axis=1)
    accuracy = float(np.mean(predicted == y_test))
    return TrainedExample(
        model=model,
        calib={INPUT_NAME: x_train[calibration_indices(len(x_train), seed)]},
        test_inputs={INPUT_NAME: x_test},
        test_labels=y_test,
        metric={"name": "accuracy", "value": round(accuracy, 4)},
        labels=[str(d) for d in range(10)],
        preprocessing={
            "kind": "image",
            "layout": "NHWC",
            "size": [IMAGE_SIZE, IMAGE_SIZE],
            "color": "gray",
            "resize": "linear",
            # model input = pixel * scale + offset, pixel in 0..255
            "scale": 1.0 / 255.0,
            "offset": 0.0,
            "dtype": "float32",
        },
    )
