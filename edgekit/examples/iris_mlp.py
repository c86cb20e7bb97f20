"""iris-mlp: the first lesson, a small Dense network on scikit-learn's iris flowers.

Features are standardised with the training split's mean and standard deviation; the
example's preprocessing records both so a device can do the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.examples.base import Progress, TrainedExample, keras_fit

INPUT_NAME = "features"


def build_model() -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(4,), name=INPUT_NAME)
    x = layers.Dense(16, activation="relu")(inputs)
    x = layers.Dense(16, activation="relu")(x)
    outputs = layers.Dense(3, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="iris_mlp")
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(epochs: int, seed: int, progress: Progress) -> TrainedExample:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    x = iris.data.astype(np.float32)
    y = iris.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    x_train = ((x_train - mean) / std).astype(np.float32)
    x_test = ((x_test - mean) / std).astype(np.float32)
    progress(f"data: {len(x_train)} training and {len(x_test)} test flowers, 4 features")

    model = build_model()
    keras_fit(model, x_train, y_train, epochs=epochs, batch_size=16, progress=progress)
    predicted = np.argmax(model.predict(x_test, verbose=0), axis=1)
    accuracy = float(np.mean(predicted == y_test))
    return TrainedExample(
        model=model,
        # The whole training split is smaller than a usual calibration set: ship all of it.
        calib={INPUT_NAME: x_train},
        test_inputs={INPUT_NAME: x_test},
        test_labels=y_test,
        metric={"name": "accuracy", "value": round(accuracy, 4)},
        labels=[str(name) for name in iris.target_names],
        preprocessing={
            "kind": "standardize",
            "features": [str(name) for name in iris.feature_names],
            "mean": [round(float(v), 6) for v in mean],
            "std": [round(float(v), 6) for v in std],
            "dtype": "float32",
        },
    )
