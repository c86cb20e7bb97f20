"""Train an example from Python, then use what it wrote like a device would.

python examples/use_trained_example.py [OUT_DIR]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

# TensorFlow's C++ start-up lines ("oneDNN custom operations are on", absl's notice) would bury the
# three lines this script prints; edgekit's CLI keeps them off the terminal the same way.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from edgekit.quiet import quiet_tensorflow_import  # noqa: E402

quiet_tensorflow_import()
from edgekit.examples import train_example  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="edgekit-iris-")) / "iris"
    result = train_example("iris-mlp", out, progress=lambda line: print(line, file=sys.stderr))
    print(f"trained iris-mlp: accuracy {result['metric']['value']:.3f} ({result['floor']['text']}), files in {out}")

    import keras

    model = keras.models.load_model(out / "model.keras")
    description = json.loads((out / "example.json").read_text())
    pre = description["preprocessing"]
    # A flower measured in cm (sepal length, sepal width, petal length, petal width).
    raw = np.array([[6.3, 3.3, 6.0, 2.5]], dtype=np.float32)
    features = (raw - np.array(pre["mean"], dtype=np.float32)) / np.array(pre["std"], dtype=np.float32)
    probabilities = model.predict(features, verbose=0)[0]
    best = int(np.argmax(probabilities))
    measured = ", ".join(f"{value:g}" for value in raw[0])
    print(f"[{measured}] cm → {description['labels'][best]} ({probabilities[best]:.1%})")


if __name__ == "__main__":
    main()
