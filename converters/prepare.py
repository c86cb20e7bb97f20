"""Before any conversion: the route and its rungs, the source and its reference runtime, the data, the input shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.converters.evaluation import check_data_agrees, data_shapes, predict_all, random_dataset
from edgekit.converters.request import EXAMPLE_DATA, Context, ConvertRequest, Progress
from edgekit.converters.steps import plan
from edgekit.data import (
    Split,
    load_dataset,
)
from edgekit.errors import ConfigError, DataError
from edgekit.formats import Precision, SourceKind
from edgekit.inputs import resolve
from edgekit.manifest import (
    ManifestTensor,
    load_manifest,
    model_description,
)
from edgekit.runtimes import Runtime, load_runtime
from edgekit.tasks.metrics import task_metric


def rungs_to_try(request: ConvertRequest, kind: SourceKind) -> list[Precision]:
    """The precisions to try: the one asked for, or (auto) every rung this route can make."""
    if request.precision is not None:
        return [request.precision]
    rungs = []
    for precision in request.target.ladder():
        try:
            plan(kind, request.target, precision)
        except ConfigError:
            continue  # a .tflite adopted as it is has no int8 rung of its own
        rungs.append(precision)
    return rungs


def _recorded_inputs(source: Path, kind: SourceKind) -> list[ManifestTensor] | None:
    """The input sizes an artifact being adopted or re-quantized was checked at (its manifest)."""
    manifest = load_manifest(source) if kind is not SourceKind.KERAS else None
    return manifest.inputs if manifest is not None else None


def _find_example_data(source: Path) -> Path | None:
    folder = source if source.is_dir() else source.parent
    candidate = folder / EXAMPLE_DATA
    return candidate if candidate.exists() else None


def _load_reference(source: Path, kind: SourceKind) -> tuple[Any, Runtime]:
    if kind is SourceKind.KERAS:
        from edgekit.converters.sources import load_keras_model
        from edgekit.runtimes.keras import KerasRuntime

        model = load_keras_model(source)
        return model, KerasRuntime(source, model=model)
    if kind is SourceKind.TFLITE:
        from edgekit.converters.sources import check_tflite_file

        check_tflite_file(source)
        return None, load_runtime(source, "tflite")
    if kind is SourceKind.OPENVINO:
        return None, load_runtime(source, "openvino")
    from edgekit.converters.sources import load_onnx_model

    load_onnx_model(source)
    return None, load_runtime(source, "onnxruntime")


def prepare(request: ConvertRequest, kind: SourceKind, progress: Progress) -> Context:
    description = model_description(request.source)
    if request.task:
        description.task = request.task
    if request.preprocessing:
        description = description.with_preprocessing(request.preprocessing)
    if request.labels:
        description.labels = list(request.labels)
    ladder = rungs_to_try(request, kind)
    for precision in ladder:
        plan(kind, request.target, precision)  # reject impossible routes before loading anything

    example_data = _find_example_data(request.source)
    calib_path = request.calib or example_data
    needs_calibration = any(p.needs_calibration for p in ladder)
    if request.precision is Precision.INT8 and calib_path is None:
        raise ConfigError(
            "--quant int8 needs calibration data", hint="pass --calib DATA (.npz, .npy or an image folder)"
        )

    progress(f"loading {request.source} ({kind.value})")
    keras_model, reference = _load_reference(request.source, kind)
    calibration = None
    if needs_calibration and calib_path is not None:
        calibration = load_dataset(
            calib_path, Split.CALIBRATION, reference.inputs, preprocessing=description.preprocessing
        ).subset(request.calib_samples)
        progress(f"calibration: {len(calibration)} samples from {calib_path}")

    eval_path = request.eval or example_data
    evaluation = None
    if eval_path is not None:
        try:
            evaluation = load_dataset(
                eval_path, Split.EVALUATION, reference.inputs, preprocessing=description.preprocessing
            )
        except DataError:
            if request.eval is not None:
                raise
    if request.max_drop is not None and (
        evaluation is None or (evaluation.labels is None and evaluation.boxes is None)
    ):
        raise ConfigError(
            "--max-drop needs labeled evaluation data", hint="pass --eval DATA with labels (y / test_labels)"
        )
    # The size the artifact is checked (and, with --shape, fixed) at: never one made up.
    data = evaluation if evaluation is not None else calibration
    resolved = resolve(
        reference.inputs,
        request=request.shapes,
        data_shapes=data_shapes(data, reference.inputs),
        manifest_inputs=_recorded_inputs(request.source, kind),
        model=request.source.name,
    )
    if keras_model is not None and request.shapes:
        from edgekit.converters.keras_to_tflite import fixed_shape_copy

        keras_model = fixed_shape_copy(keras_model, [r.shape for r in resolved])
    if evaluation is None:
        evaluation = calibration if calibration is not None else random_dataset(resolved)
    elif request.shapes:
        check_data_agrees(evaluation, resolved)
    progress("inputs: " + "; ".join(r.describe() for r in resolved))
    progress(f"checking against {len(evaluation)} samples from {evaluation.origin}")
    reference_outputs = predict_all(reference, evaluation)
    reference_metric = None
    if description.task:
        reference_metric = task_metric(description.task, reference_outputs[0], evaluation, description.postprocessing)
    return Context(
        request=request,
        kind=kind,
        description=description,
        keras_model=keras_model,
        reference=reference,
        calibration=calibration,
        evaluation=evaluation,
        reference_outputs=reference_outputs,
        reference_metric=reference_metric,
        resolved=resolved,
        ladder=ladder,
    )
