"""Graph features of the architectures that published device measurements name.

A device profile's reference measurements say "MobileNet v1, fp32, 4 threads: 75 ms". To fit a
cost model to them the predictor needs that architecture's operator costs, on a machine that
may have no TensorFlow: they ship, precomputed, in ``reference_models.json``.

Regenerate (needs ``edgekit[convert]``, a few minutes)::

    python -m edgekit.reference_models [NAME ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from edgekit.errors import UnknownNameError
from edgekit.features import Features

DATA_FILE = "reference_models.json"
PRECISIONS = ("fp32", "int8")


@cache
def _table() -> dict[str, Any]:
    text = resources.files("edgekit").joinpath(DATA_FILE).read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def reference_names() -> list[str]:
    return sorted(_table())


def reference_features(model: str, precision: str) -> Features:
    """Features of a named reference architecture at ``precision`` (fp16 runs as fp32 features)."""
    table = _table()
    if model not in table:
        raise UnknownNameError("reference model", model, table)
    entry = table[model]
    key = "int8" if precision == "int8" else "fp32"
    return Features.from_dict(entry[key])


def compute_features(name: str, workdir: Path) -> dict[str, Any]:
    """Build ``name``, convert it to fp32 and int8 TFLite as calibration does, analyze both."""
    from edgekit.calibrate import build_calibration_model, export
    from edgekit.graph import analyze
    from edgekit.model_zoo import ARCHITECTURES

    model = build_calibration_model(name)
    entry: dict[str, Any] = {"title": ARCHITECTURES[name].title, "input_shape": list(model.inputs[0].shape[1:])}
    for precision in PRECISIONS:
        out = export(model, name, "tflite", precision, workdir)
        entry[precision] = Features.from_graph(analyze(out)).to_dict()
        out.unlink()
    return entry


def main(names: list[str]) -> None:
    from edgekit.model_zoo import ARCHITECTURES

    target = Path(__file__).with_name(DATA_FILE)
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
