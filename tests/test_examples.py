"""Training the course's examples: what lands on disk, determinism, and interrupted training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import Interrupted
from edgekit.examples import EXAMPLES, train_example
from edgekit.examples.base import CALIB_PREFIX, TEST_BOXES, TEST_LABELS, TEST_PREFIX
from tests.conftest import QUICK_EPOCHS

CLASS_COUNTS = {"digits-cnn": 10, "iris-mlp": 3, "text-lstm": 2, "shapes-detector": 3}


@pytest.fixture
def one_epoch_runs(trained) -> dict[str, Path]:
    """Every example as the session trained it (briefly, once): enough to check what is written."""
    return trained


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_folder_holds_model_data_labels_and_description(one_epoch_runs, name: str) -> None:
    import keras

    folder = one_epoch_runs[name]
    spec = EXAMPLES[name]
    document = json.loads((folder / "example.json").read_text())
    assert document["name"] == name
    assert document["task"] == spec.task.value
    assert document["metric"]["name"] == spec.metric.value
    assert isinstance(document["metric"]["value"], float)
    assert document["train_seconds"] > 0
    assert document["preprocessing"]["kind"]
    assert document["seed"] == 0 and document["epochs"] == QUICK_EPOCHS[name]

    model = keras.models.load_model(folder / "model.keras")
    input_names = [t.name.split(":")[0] for t in model.inputs]
    assert [i["name"] for i in document["inputs"]] == input_names

    data = np.load(folder / "data.npz", allow_pickle=False)
    for input_name in input_names:
        calib, test = data[CALIB_PREFIX + input_name], data[TEST_PREFIX + input_name]
        assert len(calib) > 0 and len(test) > 0
        assert calib.shape[1:] == test.shape[1:] == tuple(model.get_layer(input_name).output.shape[1:])
    if spec.task.value == "detection":
        boxes = data[TEST_BOXES]
        assert boxes.shape[1] == 6 and np.all((boxes[:, 2:] >= 0) & (boxes[:, 2:] <= 1))
    else:
        assert len(data[TEST_LABELS]) == len(data[TEST_PREFIX + input_names[0]])

    # The saved model reproduces itself: loaded output on the test split is what it predicts.
    sample = {n: data[TEST_PREFIX + n][:4] for n in input_names}
    outputs = model.predict(sample if len(sample) > 1 else next(iter(sample.values())), verbose=0)
    assert np.all(np.isfinite(outputs))

    if name in CLASS_COUNTS:
        labels = (folder / "labels.txt").read_text().splitlines()
        assert len(labels) == CLASS_COUNTS[name] == len(document["labels"])
    else:
        assert not (folder / "labels.txt").exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temporary folders left"


def test_text_example_ships_its_vocabulary(one_epoch_runs) -> None:
    folder = one_epoch_runs["text-lstm"]
    vocabulary = (folder / "vocab.txt").read_text().splitlines()
    preprocessing = json.loads((folder / "example.json").read_text())["preprocessing"]
    assert vocabulary[preprocessing["pad_id"]] == "<pad>" and vocabulary[preprocessing["oov_id"]] == "<oov>"
    tokens = np.load(folder / "data.npz")["test/tokens"]
    assert tokens.max() < len(vocabulary)


def test_detector_records_its_decoding(one_epoch_runs) -> None:
    from edgekit.tasks.detection import GridSpec

    post = json.loads((one_epoch_runs["shapes-detector"] / "example.json").read_text())["postprocessing"]
    spec = GridSpec.from_dict(post)
    assert spec.grid == (8, 8) and spec.num_classes == 3 and len(spec.anchors) == 2


def test_same_seed_same_data(tmp_path: Path) -> None:
    for run in ("a", "b"):
        train_example("iris-mlp", tmp_path / run, epochs=1, seed=5)
    train_example("iris-mlp", tmp_path / "c", epochs=1, seed=6)
    a, b, c = (np.load(tmp_path / run / "data.npz") for run in "abc")
    for key in a.files:
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["test/features"], c["test/features"])


def test_generated_corpora_are_seeded() -> None:
    from edgekit.examples import recommender, text_lstm

    messages, labels = text_lstm.generate_corpus(50, 1)
    messages_again, labels_again = text_lstm.generate_corpus(50, 1)
    assert messages == messages_again and np.array_equal(labels, labels_again)
    assert text_lstm.generate_corpus(50, 2)[0] != messages
    first, again = recommender.generate_ratings(3), recommender.generate_ratings(3)
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))


def test_spam_rule_depends_on_word_order() -> None:
    from edgekit.examples.text_lstm import is_spam

    assert is_spam("you are a winner".split())
    assert is_spam("free cash today".split())
    assert not is_spam("cash is free".split())
    assert not is_spam("free for lunch tomorrow then cash".split())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits-cnn", "iris-mlp", "text-lstm"])
def test_full_training_meets_the_floor(tmp_path: Path, name: str) -> None:
    """The fast examples reach their quality floor at default settings (all five: benchmarks/examples.py)."""
    result = train_example(name, tmp_path / name)
    assert result["floor"]["met"], result["metric"]
    assert EXAMPLES[name].meets_floor(result["metric"])


def test_cli_train_json_is_one_document(tmp_path: Path) -> None:
    from tests.conftest import run_edgekit

    result = run_edgekit("examples", "train", "iris-mlp", "--out", str(tmp_path / "iris"), "--epochs", "2", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["name"] == "iris-mlp"
    assert set(document["files"]) == {"model.keras", "data.npz", "labels.txt", "example.json"}
    assert "epoch 2/2" in result.stderr  # progress goes to stderr, never into the JSON


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_training_leaves_nothing(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "digits"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "examples", "train", "digits-cnn", "--out", str(out), "--epochs", "500"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    seen = ""
    assert process.stderr is not None
    while "epoch 2/500" not in seen:
        line = process.stderr.readline()
        assert line or process.poll() is None, seen
        seen += line
        assert time.monotonic() < deadline, seen
    # The temporary folder exists while training runs ...
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".digits.partial-")]
    process.send_signal(signum)
    try:
        _, rest = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)  # where it is stuck, every thread (edgekit's faulthandler)
        time.sleep(2)
        process.kill()
        _, rest = process.communicate()
        pytest.fail(f"no exit 60 s after signal {signum}; its threads:\n{rest[-6000:]}")
    assert process.returncode == Interrupted.exit_code, seen + rest
    assert "Traceback" not in rest
    assert "interrupted" in rest
    # ... and nothing at all is left once it has been interrupted.
    assert list(tmp_path.iterdir()) == []
