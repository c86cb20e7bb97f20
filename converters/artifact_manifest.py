"""The manifest a conversion writes beside its artifact: what a device needs to run it, and where it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgekit.converters.request import Candidate, Context
from edgekit.errors import DataError
from edgekit.manifest import (
    MANIFEST_VERSION,
    ImagePreprocessing,
    Manifest,
    Preprocessing,
    now_iso,
    sha256_of,
    size_of,
    tool_versions,
)


def image_layout(shape: list[Any]) -> str:
    """NCHW where a 4-D input has its channels (1 or 3) second and not last, else NHWC."""
    if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    return "NHWC"


def _preprocessing_for(preprocessing: Preprocessing | None, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The image preprocessing with the artifact's own layout (a camera frame is HWC, a model
    exported from PyTorch takes CHW), as the manifest writes it: the fields that were given."""
    if preprocessing is None:
        return None
    written = preprocessing.model_dump(exclude_unset=True)
    if isinstance(preprocessing, ImagePreprocessing) and inputs:
        shape = inputs[0].get("shape") or inputs[0].get("declared") or []
        written["layout"] = image_layout(list(shape))
    return written


def build_manifest(ctx: Context, chosen: Candidate, artifact: Path, report: dict[str, Any]) -> Manifest:
    request = ctx.request
    fields = {
        "edgekit_manifest": MANIFEST_VERSION,
        "artifact": artifact.name,
        "files": [artifact.with_suffix(f.suffix).name for f in chosen.files],
        "format": request.target.name,
        "precision": chosen.precision.value,
        "size_bytes": chosen.size_bytes,
        "sha256": sha256_of(chosen.staged),
        "inputs": chosen.inputs,
        "outputs": chosen.outputs,
        # Axes a converter moved relative to the source (onnx2tf's NCHW → NHWC), per input and output.
        "layout": {k: v for k, v in chosen.layout.items() if k != "channels_last"} or None,
        "dynamic_inputs": any(entry.get("dynamic") for entry in chosen.inputs),
        "task": ctx.description.task,
        "labels": ctx.description.labels,
        "preprocessing": _preprocessing_for(ctx.description.preprocessing, chosen.inputs),
        "postprocessing": None
        if ctx.description.postprocessing is None
        else ctx.description.postprocessing.model_dump(exclude_unset=True),
        "source": {
            "path": str(request.source),
            "format": ctx.kind.value,
            "sha256": sha256_of(request.source),
            "size_bytes": size_of(request.source),
        },
        "conversion": {
            "steps": chosen.steps,
            "notes": report["notes"],
            "seconds": report["seconds"],
            "calibration": None
            if ctx.calibration is None or not chosen.precision.needs_calibration
            else {"origin": ctx.calibration.origin, "samples": len(ctx.calibration)},
            "evaluation": report["evaluation"],
        },
        "parity": chosen.parity,
        "metric": chosen.metric,
        "gate": chosen.gate,
        "versions": tool_versions(),
        "created": now_iso(),
    }
    try:
        return Manifest.model_validate(fields)
    except ValidationError as exc:  # a value the user gave (example.json, --labels) the contract cannot hold
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DataError(
            f"the manifest cannot record {where}: {first['msg']}", hint="fix the value given for it"
        ) from exc
