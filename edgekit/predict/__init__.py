"""Prediction: what a model costs on a device it has never run on.

The package's parts import one way — ``graph`` (the operator IR and one reader per format) →
``features`` (the cost terms) → ``references`` and ``profiles`` (devices, their published
figures) → ``cost`` (the prior, the fits, the predictor) → ``calibrate`` (timing this machine,
which only the CLI imports). This module exports what the CLI, compare and the demo use.
"""

from __future__ import annotations

from edgekit.predict.cost.fit import leave_one_reference_out
from edgekit.predict.cost.predictor import Prediction, check_threads, choose_runtime, parse_device, predict
from edgekit.predict.cost.prior import peak_flops, physical_floor
from edgekit.predict.graph import GraphCost, OpClass, OpCost, analyze, model_inputs, value_dependent_outputs
from edgekit.predict.profiles import (
    DeviceProfile,
    load_profile,
    profile_names,
    shipped_profile_names,
    user_profile_dir,
    user_profile_names,
)
from edgekit.predict.profiles.host import is_this_machine, machine_name, usable_cores

__all__ = [
    "DeviceProfile", "GraphCost", "OpClass", "OpCost", "Prediction", "analyze", "check_threads", "choose_runtime",
    "is_this_machine", "leave_one_reference_out", "load_profile", "machine_name", "model_inputs", "parse_device",
    "peak_flops", "physical_floor", "predict", "profile_names", "shipped_profile_names", "usable_cores",
    "user_profile_dir", "user_profile_names", "value_dependent_outputs",
]  # fmt: skip
