"""ONNX → TFLite with onnx2tf, the converter the field uses for this route (PyTorch exports on
their way to a Raspberry Pi or a phone): fp32, fp16, dynamic-range and full int8.

What this module knows that onnx2tf does not say plainly:
- onnx2tf wants static input shapes; an exporter's ``-1`` dimension slips past its own
  ``overwrite_input_shape``. The resolved sizes are written into a copy of the model first.
- TensorFlow 2.21 refuses scope names with characters exporters use in node names (Paddle's
  ``Softmax@0``): nodes are renamed in that copy.
- For image-like inputs onnx2tf runs a check on sample images it downloads from GitHub unless a
  file of that name is in its working directory; edgekit writes seeded random data there and
  runs it in a folder (and a process) of its own, so nothing is fetched.
- It turns NCHW inputs and outputs into NHWC. Which axes moved is read by comparing the shapes
  (and, for outputs whose shapes cannot tell, the values) with ONNX Runtime's, and recorded in
  the manifest so the daemon and compare feed the artifact correctly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.data import Dataset
from edgekit.errors import ConversionError, require_extra
from edgekit.formats import Precision
from edgekit.quiet import debugging

# The file onnx2tf looks for in its working directory before downloading it.
_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
# Characters TensorFlow accepts in a scope name.
_SCOPE_UNSAFE = re.compile(r"[^A-Za-z0-9_.\\/>-]")
# What onnx2tf names each precision's file, after the model's stem.
_OUTPUT_SUFFIX = {
    Precision.FP32: "_float32.tflite",
    Precision.FP16: "_float16.tflite",
    Precision.DYNAMIC: "_dynamic_range_quant.tflite",
    Precision.INT8: "_full_integer_quant.tflite",
}
CONVERT_TIMEOUT_S = 1800
# NCHW → NHWC for each rank onnx2tf transposes.
CHANNELS_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1), 5: (0, 2, 3, 4, 1)}


@dataclass
class OnnxToTFLiteOptions:
    precision: Precision
    shapes: dict[str, tuple[int, ...]]  # the resolved, static input shapes
    calibration: Dataset | None = None  # keyed by the ONNX input names, NCHW as ONNX takes it
    notes: list[str] = field(default_factory=list)


def axis_order(source: tuple[int, ...], artifact: tuple[int, ...]) -> tuple[int, ...] | None:
    """How onnx2tf laid out a tensor: the permutation taking the ONNX shape to the TFLite one
    (None: the same order; also None where the shapes cannot tell, the caller then checks values)."""
    if tuple(source) == tuple(artifact):
        return None
    order = CHANNELS_LAST.get(len(source))
    if order is not None and tuple(source[i] for i in order) == tuple(artifact):
        return order
    raise ConversionError(
        f"onnx2tf changed a tensor of shape {tuple(source)} to {tuple(artifact)}, which edgekit cannot map back"
    )


def _static_copy(source: Path, shapes: dict[str, tuple[int, ...]], folder: Path) -> Path:
    import onnx

    from edgekit.predict.graph.onnx_reader import with_input_shapes

    model = onnx.load(str(source))
    with_input_shapes(model, shapes)
    for index, node in enumerate(model.graph.node):
        node.name = _SCOPE_UNSAFE.sub("_", node.name) or f"{node.op_type}_{index}"
    fixed = folder / "model.onnx"
    onnx.save(model, str(fixed))
    return fixed


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(Error|Exception|Exit)\b.*")


def _run_onnx2tf(arguments: dict[str, object], folder: Path) -> None:
    """onnx2tf in a process of its own: it imports tf_keras (after which OpenVINO no longer reads
    an in-memory Keras model in that process), may call sys.exit, and prints its own banners."""
    script = "import json, sys, onnx2tf; onnx2tf.convert(**json.loads(sys.argv[1]))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(arguments)],
            cwd=folder, env=env, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"ONNX → TFLite conversion (onnx2tf) took over {CONVERT_TIMEOUT_S} s") from exc
    if debugging():
        sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        lines = [_ANSI.sub("", line).strip() for line in (done.stderr + done.stdout).splitlines()]
        found = [line for line in lines if _EXCEPTION_LINE.match(line)]
        reason = found[-1] if found else next((line for line in reversed(lines) if line), f"exit {done.returncode}")
        raise ConversionError(f"ONNX → TFLite conversion (onnx2tf) failed: {reason[:300]}")


def channels_last_inputs(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Inputs already channels last (a Keras model's [1, 28, 28, 1] through tf2onnx): onnx2tf
    is told to keep them as they are."""
    return [
        name for name, shape in shapes.items() if len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)
    ]


def _calibration_files(options: OnnxToTFLiteOptions, folder: Path) -> list[list[object]] | None:
    """onnx2tf's calibration inputs: one .npy per input, channels last, no normalisation."""
    data = options.calibration
    if options.precision is not Precision.INT8:
        return None
    if data is None:
        raise ConversionError("--quant int8 from ONNX needs calibration data", hint="pass --calib DATA")
    entries: list[list[object]] = []
    for name in options.shapes:
        key = data.key_for(name)
        # Each sample is one batch-1 input (1, C, H, W): N of them, channels last.
        samples = np.concatenate([data.sample(i, key) for i in range(len(data))]).astype(np.float32)
        order = CHANNELS_LAST.get(samples.ndim)
        if order is not None and name not in channels_last_inputs(options.shapes):
            samples = samples.transpose(order)
        path = folder / f"calib_{len(entries)}.npy"
        np.save(path, samples)
        channels = samples.shape[-1]
        entries.append([name, str(path), [[[[0.0] * channels]]], [[[[1.0] * channels]]]])
    return entries


def onnx_to_tflite(source: Path, out: Path, options: OnnxToTFLiteOptions) -> Path:
    """Convert ``source`` (.onnx) to ``out`` (.tflite) at ``options.shapes``."""
    require_extra("onnx2tf", "convert")

    with tempfile.TemporaryDirectory(prefix="edgekit-onnx2tf-") as scratch:
        folder = Path(scratch)
        fixed = _static_copy(source, options.shapes, folder)
        np.save(folder / _SAMPLE_FILE, np.random.default_rng(0).uniform(0, 1, (20, 128, 128, 3)).astype(np.float32))
        calibration = _calibration_files(options, folder)
        output = folder / "out"
        arguments = {
            "input_onnx_file_path": str(fixed),
            "output_folder_path": str(output),
            "not_use_onnxsim": True,
            "copy_onnx_input_output_names_to_tflite": True,
            "non_verbose": True,
            "output_integer_quantized_tflite": options.precision in (Precision.INT8, Precision.DYNAMIC),
            "custom_input_op_name_np_data_path": calibration,
            "keep_nwc_or_nhwc_or_ndhwc_input_names": channels_last_inputs(options.shapes) or None,
        }
        _run_onnx2tf(arguments, folder)
        written = output / f"model{_OUTPUT_SUFFIX[options.precision]}"
        if not written.exists():
            raise ConversionError(f"onnx2tf wrote no {options.precision.value} model")
        Path(out).write_bytes(written.read_bytes())
    return Path(out)


def align_outputs(
    reference: list[np.ndarray], produced: list[np.ndarray], *, stacked: bool = False
) -> tuple[list[np.ndarray], list[dict[str, object]]]:
    """The artifact's outputs in the source's order and layout, and how each was found.

    onnx2tf may reorder outputs and lays 3-5-D ones out channels last; names do not survive
    reliably. Each source output takes the unused artifact output whose shape matches it as is
    or channels last, the closest in value where several do. ``stacked``: the arrays hold N whole
    outputs on a new leading axis (a model with a fixed batch of 2, say), which the order skips."""
    aligned: list[np.ndarray] = []
    found: list[dict[str, object]] = []
    used: set[int] = set()
    for want in reference:
        choices: list[tuple[int, tuple[int, ...] | None, np.ndarray]] = []
        for index, got in enumerate(produced):
            if index in used:
                continue
            if got.shape == want.shape:
                choices.append((index, None, got))
            order = CHANNELS_LAST.get(want.ndim - 1 if stacked else want.ndim)
            if order is not None and stacked:
                order = (0, *(i + 1 for i in order))
            if order is not None and got.shape == tuple(want.shape[i] for i in order):
                back = tuple(int(i) for i in np.argsort(order))
                choices.append((index, order, got.transpose(back)))
        if not choices or any(c[2].size == 0 for c in choices):
            raise ConversionError(
                f"the TFLite model from onnx2tf has no output shaped like the source's {tuple(want.shape)[1:]}"
            )
        index, order, value = min(choices, key=lambda c: float(np.max(np.abs(c[2].astype(np.float64) - want))))
        used.add(index)
        aligned.append(value)
        # Recorded as the tensor's own order (a stacking axis is not the model's).
        own = None if order is None else (list(order) if not stacked else [i - 1 for i in order[1:]])
        found.append({"artifact_output": index, "order": own})
    return aligned, found
