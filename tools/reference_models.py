"""Rebuild edgekit's reference table (edgekit/predict/profiles/reference_models.json) in the source tree.

    python tools/reference_models.py [NAME ...]

Each architecture published device figures name is built as calibration builds it, converted
to fp32 and int8 TFLite and analysed; its features are what the predictor fits references with
on a device that has no TensorFlow. Needs ``edgekit[convert]``; a few minutes per architecture.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgekit.predict.calibrate.run import build_calibration_model, export
from edgekit.predict.calibrate.zoo import ARCHITECTURES
from edgekit.predict.graph import analyze
from edgekit.predict.graph.features import Features
from edgekit.predict.profiles.references import DATA_FILE, PRECISIONS

TARGET = Path(__file__).resolve().parent.parent / "edgekit" / "predict" / "profiles" / DATA_FILE


def compute_features(name: str, workdir: Path) -> dict[str, Any]:
    """Build ``name``, convert it to fp32 and int8 TFLite as calibration does, analyze both."""
    model = build_calibration_model(name)
    entry: dict[str, Any] = {"title": ARCHITECTURES[name].title, "input_shape": list(model.inputs[0].shape[1:])}
    for precision in PRECISIONS:
        out = export(model, name, "tflite", precision, workdir)
        entry[precision] = Features.from_graph(analyze(out)).to_dict()
        out.unlink()
    return entry


def main(names: list[str]) -> None:
    target = TARGET
    table = json.loads(target.read_text()) if target.exists() else {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in names or sorted(ARCHITECTURES):
            print(f"{name} …", file=sys.stderr, flush=True)
            table[name] = compute_features(name, Path(workdir))
            staged = target.with_suffix(".json.tmp")
            staged.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
            staged.replace(target)


if __name__ == "__main__":
    main(sys.argv[1:])
