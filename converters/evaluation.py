"""Running models over data: the source and the artifact on the same samples, laid out as each takes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.converters.request import RANDOM_PARITY_SAMPLES, Context
from edgekit.data import (
    Dataset,
    match_inputs,
)
from edgekit.errors import ConfigError, DataError
from edgekit.inputs import ResolvedInput, random_inputs, random_values_note, shapes_of
from edgekit.runtimes import Runtime
from edgekit.runtimes.base import run_batched


def predict_all(runtime: Runtime, data: Dataset, batch: int = 256) -> list[np.ndarray]:
    """Outputs of ``runtime`` on every sample, in batches where the model allows it."""
    mapping = match_inputs(list(data.inputs), runtime.inputs, Path(data.origin).name or "data")
    whole = frozenset(mapping[k] for k in data.whole if k in mapping)
    outputs = run_batched(runtime, {mapping[k]: v for k, v in data.inputs.items() if k in mapping}, batch, whole)
    return [outputs[spec.name] for spec in runtime.outputs]


def random_dataset(resolved: list[ResolvedInput], count: int = RANDOM_PARITY_SAMPLES) -> Dataset:
    """``count`` random samples at the resolved shapes, each one whole input (edgekit.inputs)."""
    inputs = random_inputs(resolved, count)
    return Dataset(inputs, origin=random_values_note(resolved), whole=frozenset(inputs))


def evaluation_key(data: Dataset, input_name: str) -> str:
    try:
        return data.key_for(input_name)
    except DataError:
        return input_name


def artifact_shapes(ctx: Context, artifact: Path) -> dict[str, tuple[int, ...]]:
    """The resolved source shapes, keyed by the artifact's own input names."""
    from edgekit.predict.graph import model_inputs

    specs = model_inputs(artifact)
    shapes = shapes_of(ctx.resolved)
    mapping = match_inputs(list(shapes), specs, artifact.name)
    return {mapping[name]: shape for name, shape in shapes.items() if name in mapping}


def _channels_last(data: Dataset, orders: dict[str, tuple[int, ...]]) -> Dataset:
    """``data`` with the named inputs' axes moved as the artifact lays them out (NCHW → NHWC)."""
    inputs = {}
    for key, array in data.inputs.items():
        order = orders.get(key)
        if order is None:
            inputs[key] = array
        elif key in data.whole:  # (N, 1, C, H, W): the order applies past the stacking axis
            inputs[key] = array.transpose(0, *(i + 1 for i in order))
        else:  # (N, C, H, W): the batch axis is the stacking axis
            inputs[key] = array.transpose(order)
    return Dataset(inputs, data.labels, data.boxes, data.origin, whole=data.whole)


def nhwc_evaluation(ctx: Context, runtime: Runtime) -> tuple[Dataset, dict[str, Any]]:
    """The evaluation data laid out as an onnx2tf artifact takes it, and which axes moved."""
    from edgekit.converters.onnx_to_tflite import axis_order

    sources = {r.name: r.shape for r in ctx.resolved}
    mapping = match_inputs(list(sources), runtime.inputs, "the converted model")
    declared = {spec.name: spec.shape for spec in runtime.inputs}
    orders: dict[str, tuple[int, ...]] = {}
    for source_name, artifact_name in mapping.items():
        order = axis_order(sources[source_name], tuple(d or 0 for d in declared[artifact_name]))
        if order is not None:
            orders[evaluation_key(ctx.evaluation, source_name)] = order
    layout = {"channels_last": True, "inputs": {mapping[k]: list(v) for k, v in _by_source(ctx, orders).items()}}
    return _channels_last(ctx.evaluation, orders), layout


def _by_source(ctx: Context, orders: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    keys = {evaluation_key(ctx.evaluation, r.name): r.name for r in ctx.resolved}
    return {keys[k]: v for k, v in orders.items() if k in keys}


def data_shapes(data: Dataset | None, specs: list[Any]) -> dict[str, tuple[int, ...]] | None:
    """Sample shapes of ``data`` keyed by model input name."""
    if data is None:
        return None
    shapes = data.sample_shapes()
    return {
        spec.name: shapes[evaluation_key(data, spec.name)]
        for spec in specs
        if evaluation_key(data, spec.name) in shapes
    }


def check_data_agrees(data: Dataset, resolved: list[ResolvedInput]) -> None:
    shapes = data.sample_shapes()
    for r in resolved:
        got = shapes.get(evaluation_key(data, r.name))
        if got is not None and tuple(got) != r.shape:
            raise ConfigError(
                f"--shape {r.name}={','.join(map(str, r.shape))} but the evaluation data holds samples of {got}",
                hint="leave out one of the two, or make them agree",
            )
