"""The course's example models: what a student trains on the server and wants on a device.

``EXAMPLES`` is the table every command reads. Training imports TensorFlow; listing does not.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError, Interrupted, TrainingError, UnknownNameError, require_extra
from edgekit.examples.base import ExampleSpec, Metric, Progress, Task, write_example
from edgekit.outputs import atomic_directory, check_output_dir

EXAMPLES: dict[str, ExampleSpec] = {
    spec.name: spec
    for spec in (
        ExampleSpec(
            name="digits-cnn",
            task=Task.CLASSIFICATION,
            summary="CNN digit classifier on scikit-learn's digits scaled to 28×28×1",
            lesson="Conv → Pool → Flatten → Dense softmax (the MNIST lesson)",
            metric=Metric.ACCURACY,
            floor=0.97,
            floor_text="test accuracy ≥ 0.97",
            default_epochs=20,
            module="edgekit.examples.digits_cnn",
        ),
        ExampleSpec(
            name="iris-mlp",
            task=Task.CLASSIFICATION,
            summary="small Dense network on scikit-learn's iris flowers",
            lesson="Dense → Dense → softmax on standardised features",
            metric=Metric.ACCURACY,
            floor=0.93,
            floor_text="test accuracy ≥ 0.93",
            default_epochs=100,
            module="edgekit.examples.iris_mlp",
        ),
        ExampleSpec(
            name="text-lstm",
            task=Task.BINARY_CLASSIFICATION,
            summary="spam-style message classifier on a generated token corpus",
            lesson="Embedding → LSTM(return_sequences) → GlobalMaxPooling1D → Dense sigmoid",
            metric=Metric.ACCURACY,
            floor=0.90,
            floor_text="test accuracy ≥ 0.90",
            default_epochs=8,
            module="edgekit.examples.text_lstm",
        ),
        ExampleSpec(
            name="recommender",
            task=Task.REGRESSION,
            summary="user/item embedding rating predictor on ratings from latent factors",
            lesson="two inputs → Embeddings → Concatenate → Dense → rating (functional API)",
            metric=Metric.RMSE,
            floor=0.20,
            floor_text="test RMSE ≥ 20 % below predicting the mean",
            default_epochs=20,
            module="edgekit.examples.recommender",
        ),
        ExampleSpec(
            name="shapes-detector",
            task=Task.DETECTION,
            summary="YOLO-style grid detector of circles, squares and triangles rendered with OpenCV",
            lesson="conv backbone → 8×8 grid × 2 anchors; σ(t)+c, p·e^t decoding; NMS",
            metric=Metric.MAP50,
            floor=0.80,
            floor_text="mAP@0.5 ≥ 0.80 on held-out images",
            default_epochs=14,
            module="edgekit.examples.shapes_detector",
        ),
    )
}


def get_example(name: str) -> ExampleSpec:
    try:
        return EXAMPLES[name]
    except KeyError:
        raise UnknownNameError("example", name, EXAMPLES) from None


def train_example(
    name: str,
    out: Path,
    *,
    epochs: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: Progress = lambda _line: None,
) -> dict[str, Any]:
    """Train one example and write its folder atomically; returns example.json plus paths."""
    spec = get_example(name)
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if seed < 0:
        raise ConfigError(f"--seed must be zero or positive, got {seed}")
    epochs = epochs or spec.default_epochs
    out = Path(out)
    check_output_dir(out, force=force)  # before minutes of training, not after
    require_extra("tensorflow", "convert")
    require_extra("sklearn", "convert")
    require_extra("cv2", "convert")

    with atomic_directory(out, force=force) as staging:
        import keras

        keras.utils.set_random_seed(seed)
        module = importlib.import_module(spec.module)
        progress(f"training {spec.name}: {spec.lesson}, {epochs} epochs, seed {seed}")
        start = time.perf_counter()
        try:
            trained = module.train(epochs, seed, progress)
        except KeyboardInterrupt:
            raise Interrupted(
                f"training of {spec.name} was interrupted", hint=f"nothing was written to {out}"
            ) from None
        except (ValueError, ArithmeticError) as exc:
            raise TrainingError(f"training {spec.name} failed: {exc}") from exc
        seconds = time.perf_counter() - start
        document = write_example(spec, trained, staging, seed=seed, epochs=epochs, train_seconds=seconds)

    files = sorted(p.name for p in out.iterdir())
    return {**document, "out": str(out), "files": files}
