"""Train an example from Python, then use what it wrote like a device would.

python examples/use_trained_example.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.examples import train_example


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="edgekit-iris-")) / "iris"
    result = train_example("iris-mlp", out, progress=lambda line: print(line, file=sys.stderr))
    print(f"trained iris-mlp: accuracy {result['metric']['value']} ({result['floor']['text']}), files in {out}")

    import keras

    model = keras.models.load_model(out / "model.keras")
    description = json.loads((out / "example.json").read_text())
    pre = description["preprocessing"]
    # A flower measured in cm (sepal length, sepal width, petal length, petal width).
    raw = np.array([[6.3, 3.3, 6.0, 2.5]], dtype=np.float32)
    features = (raw - np.array(pre["mean"], dtype=np.float32)) / np.array(pre["std"], dtype=np.float32)
    probabilities = model.predict(features, verbose=0)[0]
    best = int(np.argmax(probabilities))
    print(f"{raw[0].tolist()} cm → {description['labels'][best]} ({probabilities[best]:.1%})")


if __name__ == "__main__":
    main()
