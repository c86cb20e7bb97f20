"""Checking a staged artifact with its format's real runtime: parity per output, the task metric, the gate."""

from __future__ import annotations

from edgekit.converters.evaluation import nhwc_evaluation, predict_all
from edgekit.converters.request import Candidate, Context
from edgekit.data import (
    match_inputs,
)
from edgekit.errors import ConversionError, ModelError
from edgekit.inputs import shapes_of
from edgekit.manifest import (
    size_of,
)
from edgekit.runtimes import load_runtime
from edgekit.tasks.metrics import metric_drop, parity, task_metric


def check_candidate(ctx: Context, candidate: Candidate) -> None:
    """Parity, metric and gate of a staged artifact, run with its format's real runtime."""
    from edgekit.runtimes.base import describe_shapes

    candidate.size_bytes = sum(size_of(f) for f in candidate.files)
    evaluation = ctx.evaluation
    with load_runtime(candidate.staged, ctx.request.target.runtime) as runtime:
        if candidate.layout.get("channels_last"):
            evaluation, candidate.layout = nhwc_evaluation(ctx, runtime)
        try:
            outputs = predict_all(runtime, evaluation)
        except ModelError as exc:
            shapes = describe_shapes(shapes_of(ctx.resolved))
            raise ConversionError(
                f"the {ctx.request.target.name} {candidate.precision.value} artifact does not run at input shapes "
                f"{shapes}: {exc.message.split(': ', 1)[-1]}"
            ) from exc
        if candidate.layout.get("channels_last"):
            from edgekit.converters.onnx_to_tflite import align_outputs

            outputs, candidate.layout["outputs"] = align_outputs(  # noqa: F841 - recorded in the manifest
                ctx.reference_outputs, outputs, stacked=bool(ctx.evaluation.whole)
            )
        candidate.parity = parity(ctx.description.task, ctx.reference_outputs, outputs)
        by_data_key = evaluation.sample_shapes()
        feeding = match_inputs(list(evaluation.inputs), runtime.inputs, "the evaluation data")
        checked = {feeding[key]: shape for key, shape in by_data_key.items() if key in feeding}
        candidate.inputs = []
        for spec in runtime.inputs:
            entry = spec.to_dict()
            entry["declared"] = entry["shape"]
            entry["shape"] = list(checked.get(spec.name, ()))
            entry["dynamic"] = spec.dynamic
            candidate.inputs.append(entry)
        candidate.outputs = [s.to_dict() for s in runtime.outputs]
        left_out = getattr(runtime, "left_out_outputs", None)
        if left_out:
            candidate.notes.append(f"non-tensor outputs not checked: {', '.join(left_out)}")
    if ctx.reference_metric is not None:
        measured = task_metric(ctx.description.task or "", outputs[0], ctx.evaluation, ctx.description.postprocessing)
        assert measured is not None
        drop = metric_drop(measured.name, ctx.reference_metric.value, measured.value)
        candidate.metric = {
            "name": measured.name,
            "source": round(ctx.reference_metric.value, 6),
            "artifact": round(measured.value, 6),
            "drop": round(drop, 4),
        }
        if ctx.request.max_drop is not None:
            candidate.gate = {"max_drop": ctx.request.max_drop, "passed": drop <= ctx.request.max_drop}
