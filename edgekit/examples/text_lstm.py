"""text-lstm: the spam-detection lesson, Embedding → LSTM → GlobalMaxPooling1D → Dense(sigmoid).

The corpus is generated: short messages made of everyday words, where a message is spam when
it holds a strong spam word ("winner", "prize" …) or a weak one ("free", "offer" …) followed,
within three words, by a money word ("cash", "$$$" …). Order matters for the second rule, so
a bag of words is not enough; an LSTM learns both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.examples.base import Progress, TrainedExample, calibration_indices, keras_fit

INPUT_NAME = "tokens"
MAX_LEN = 32
PAD, OOV = 0, 1

EVERYDAY = (
    "the a to and of in is it you that for on are with be this have at me my your we can will do "
    "not so get just call today tomorrow tonight meeting lunch dinner home work office later please "
    "thanks ok yes no see soon time morning evening week weekend friday monday train bus car late "
    "sorry love mum dad kids school game movie coffee tea shop buy milk bread send text phone "
    "number back here there now when what where how why who let us know think good great fine "
    "happy birthday party plan trip doctor appointment report project deadline email file photo"
).split()
STRONG = "winner prize congratulations claim jackpot lottery guaranteed".split()
WEAK = "free offer bonus reward deal exclusive".split()
MONEY = "cash money $$$ voucher credit gift".split()
VOCABULARY = ["<pad>", "<oov>", *EVERYDAY, *STRONG, *WEAK, *MONEY]


def _message(rng: np.random.Generator, spam: bool) -> list[str]:
    length = int(rng.integers(6, MAX_LEN - 4))
    words = list(rng.choice(EVERYDAY, size=length))
    if spam:
        if rng.random() < 0.5:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(STRONG)))
        else:
            at = int(rng.integers(0, len(words)))
            gap = int(rng.integers(1, 4))
            words.insert(at, str(rng.choice(WEAK)))
            words.insert(min(at + gap, len(words)), str(rng.choice(MONEY)))
    else:
        # Ham may mention the weak and money words too, but never a weak word followed closely
        # by a money word: "free for lunch", "cash at the shop yesterday".
        roll = rng.random()
        if roll < 0.3:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(WEAK)))
        elif roll < 0.6:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(MONEY)))
        elif roll < 0.75:
            # money first, weak word later: the order that is not spam
            at = int(rng.integers(0, len(words)))
            words.insert(at, str(rng.choice(MONEY)))
            words.insert(int(rng.integers(at + 1, len(words) + 1)), str(rng.choice(WEAK)))
    return words[:MAX_LEN]


def is_spam(words: list[str]) -> bool:
    """The rule that labels the corpus."""
    for i, word in enumerate(words):
        if word in STRONG:
            return True
        if word in WEAK and any(w in MONEY for w in words[i + 1 : i + 4]):
            return True
    return False


def generate_corpus(count: int, seed: int) -> tuple[list[list[str]], np.ndarray]:
    rng = np.random.default_rng(seed)
    messages, labels = [], []
    for _ in range(count):
        words = _message(rng, spam=bool(rng.random() < 0.4))
        messages.append(words)
        labels.append(int(is_spam(words)))  # the rule, not the intent, is the label
    return messages, np.asarray(labels, dtype=np.int64)


def encode(messages: list[list[str]]) -> np.ndarray:
    index = {word: i for i, word in enumerate(VOCABULARY)}
    tokens = np.full((len(messages), MAX_LEN), PAD, dtype=np.int32)
    for row, words in enumerate(messages):
        ids = [index.get(w, OOV) for w in words][:MAX_LEN]
        tokens[row, : len(ids)] = ids
    return tokens


def build_model() -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=(MAX_LEN,), dtype="int32", name=INPUT_NAME)
    x = layers.Embedding(len(VOCABULARY), 16)(inputs)
    x = layers.LSTM(32, return_sequences=True)(x)
    x = layers.GlobalMaxPooling1D()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="spam_probability")(x)
    model = keras.Model(inputs, outputs, name="text_lstm")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(epochs: int, seed: int, progress: Progress) -> TrainedExample:
    messages, labels = generate_corpus(5000, seed)
    tokens = encode(messages)
    split = 4000
    x_train, x_test = tokens[:split], tokens[split:]
    y_train, y_test = labels[:split], labels[split:]
    progress(f"data: {split} training and {len(x_test)} test messages, {labels.mean():.0%} spam")

    model = build_model()
    keras_fit(model, x_train, y_train.astype(np.float32), epochs=epochs, batch_size=64, progress=progress)
    predicted = (model.predict(x_test, verbose=0)[:, 0] >= 0.5).astype(np.int64)
    accuracy = float(np.mean(predicted == y_test))
    return TrainedExample(
        model=model,
        calib={INPUT_NAME: x_train[calibration_indices(len(x_train), seed)]},
        test_inputs={INPUT_NAME: x_test},
        test_labels=y_test,
        metric={"name": "accuracy", "value": round(accuracy, 4)},
        labels=["ham", "spam"],
        preprocessing={
            "kind": "tokens",
            "vocabulary": "vocab.txt",
            "lowercase": True,
            "split": "whitespace",
            "max_len": MAX_LEN,
            "pad_id": PAD,
            "oov_id": OOV,
            "padding": "post",
            "dtype": "int32",
        },
        extra_files={"vocab.txt": "\n".join(VOCABULARY) + "\n"},
    )
