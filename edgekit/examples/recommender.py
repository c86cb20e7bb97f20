"""recommender: the collaborative-filtering lesson with the functional API.

Two inputs (user id, item id) → one embedding each → concatenate → Dense → predicted rating.
Ratings are generated from hidden user and item factors plus biases and noise, so there is
structure to learn; the metric is RMSE against predicting the training mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.examples.base import Progress, TrainedExample, calibration_indices, keras_fit

USERS, ITEMS, FACTORS = 300, 200, 4
RATINGS = 30_000
USER_INPUT, ITEM_INPUT = "user", "item"


def generate_ratings(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user ids, item ids, ratings in 1..5) from latent factors; each pair at most once."""
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(0.0, 0.7, size=(USERS, FACTORS))
    item_factors = rng.normal(0.0, 0.7, size=(ITEMS, FACTORS))
    user_bias = rng.normal(0.0, 0.4, size=USERS)
    item_bias = rng.normal(0.0, 0.4, size=ITEMS)
    pairs = rng.choice(USERS * ITEMS, size=RATINGS, replace=False)
    users, items = pairs // ITEMS, pairs % ITEMS
    affinity = np.sum(user_factors[users] * item_factors[items], axis=1)
    ratings = 3.2 + user_bias[users] + item_bias[items] + affinity + rng.normal(0.0, 0.35, size=RATINGS)
    return users.astype(np.int32), items.astype(np.int32), np.clip(ratings, 1.0, 5.0).astype(np.float32)


def build_model() -> Any:
    import keras
    from keras import layers

    user = keras.Input(shape=(1,), dtype="int32", name=USER_INPUT)
    item = keras.Input(shape=(1,), dtype="int32", name=ITEM_INPUT)
    user_vector = layers.Flatten()(layers.Embedding(USERS, 16, name="user_embedding")(user))
    item_vector = layers.Flatten()(layers.Embedding(ITEMS, 16, name="item_embedding")(item))
    x = layers.Concatenate()([user_vector, item_vector])
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dense(32, activation="relu")(x)
    rating = layers.Dense(1, name="rating")(x)
    model = keras.Model([user, item], rating, name="recommender")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse", metrics=["root_mean_squared_error"])
    return model


def train(epochs: int, seed: int, progress: Progress) -> TrainedExample:
    users, items, ratings = generate_ratings(seed)
    split = int(0.8 * RATINGS)
    train_x = {USER_INPUT: users[:split, None], ITEM_INPUT: items[:split, None]}
    test_x = {USER_INPUT: users[split:, None], ITEM_INPUT: items[split:, None]}
    y_train, y_test = ratings[:split], ratings[split:]
    progress(f"data: {split} training and {len(y_test)} test ratings, {USERS} users × {ITEMS} items")

    model = build_model()
    keras_fit(model, train_x, y_train, epochs=epochs, batch_size=128, progress=progress)
    predicted = model.predict(test_x, verbose=0)[:, 0]
    rmse = float(np.sqrt(np.mean((predicted - y_test) ** 2)))
    baseline = float(np.sqrt(np.mean((float(y_train.mean()) - y_test) ** 2)))
    calib = calibration_indices(split, seed)
    return TrainedExample(
        model=model,
        calib={name: array[calib] for name, array in train_x.items()},
        test_inputs=test_x,
        test_labels=y_test,
        metric={
            "name": "rmse",
            "value": round(rmse, 4),
            "baseline": round(baseline, 4),
            "improvement": round(1.0 - rmse / baseline, 4),
        },
        preprocessing={
            "kind": "ids",
            "inputs": {
                USER_INPUT: {"range": [0, USERS - 1], "dtype": "int32"},
                ITEM_INPUT: {"range": [0, ITEMS - 1], "dtype": "int32"},
            },
            "output_range": [1.0, 5.0],
        },
    )
