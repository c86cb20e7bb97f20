"""Graph features of the architectures that published device measurements name.

A device profile's reference measurements say "MobileNet v1, fp32, 4 threads: 75 ms". To fit a
cost model to them the predictor needs that architecture's operator costs, on a machine that
may have no TensorFlow: they ship, precomputed, in ``reference_models.json``.

Regenerate (needs ``edgekit[convert]``, a few minutes), from the repository::

    python tools/reference_models.py [NAME ...]
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from edgekit.errors import UnknownNameError
from edgekit.predict.graph.features import Features

DATA_FILE = "reference_models.json"
PRECISIONS = ("fp32", "int8")


@cache
def _table() -> dict[str, Any]:
    text = resources.files("edgekit.predict.profiles").joinpath(DATA_FILE).read_text()
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
