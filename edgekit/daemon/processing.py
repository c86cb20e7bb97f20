"""Pre- and post-processing read from the artifact's manifest, not from hand-set flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import preprocess_image
from edgekit.errors import ConfigError, DataError
from edgekit.manifest import GridPostprocessing, ImagePreprocessing, model_description
from edgekit.runtimes.base import format_shape
from edgekit.tasks import CLASSIFICATION_TASKS
from edgekit.tasks.detection import GridSpec, detect


def _not_camera_frames(model: Path) -> str | None:
    """Why ``model``'s inputs cannot be a camera frame (several inputs, not rank 4, integers), or
    None where one image input is possible (then a manifest saying how is what is missing)."""
    from edgekit.predict.graph import model_inputs

    try:
        specs = model_inputs(model)
    except Exception:  # noqa: BLE001 - unreadable here: the manifest's own error line says enough
        return None
    if len(specs) != 1:
        return f"{model.name} takes {len(specs)} inputs ({', '.join(s.name for s in specs)}), not one camera frame"
    spec = specs[0]
    image_dtype = np.issubdtype(np.dtype(spec.dtype), np.floating) or spec.dtype in ("uint8", "int8")
    if len(spec.shape) != 4 or not image_dtype:
        return f"{model.name}'s input {spec.name!r} is {spec.dtype} {format_shape(spec.shape)}, not an image"
    return None


@dataclass
class ModelContract:
    """What the daemon needs to know about a model to feed it frames and read its answer."""

    task: str
    labels: list[str] | None
    preprocessing: ImagePreprocessing
    postprocessing: GridPostprocessing | None
    size: tuple[int, int]  # (height, width) a frame is resized to

    @classmethod
    def for_model(cls, model: Path) -> ModelContract:
        description = model_description(model)
        pre = description.preprocessing
        if not isinstance(pre, ImagePreprocessing) or pre.size is None:
            not_frames = _not_camera_frames(model)
            if not_frames is not None:
                raise ConfigError(
                    f"{not_frames}: the daemon feeds camera frames to image models",
                    hint=f"time it with `edgekit bench {model.name}` (--shape NAME=… for its dynamic sizes)",
                )
            fmt = {".tflite": "tflite", ".onnx": "onnx", ".xml": "openvino"}.get(model.suffix, "tflite")
            raise ConfigError(
                f"{model.name} has no image preprocessing in a manifest, so edgekit cannot feed it camera frames",
                hint=f"adopt it with `edgekit convert {model.name} --to {fmt} --image-size HxW --color rgb "
                "--scale 0.00392 --task raw` (or --task classification --labels FILE); convert a Keras "
                "model with `edgekit convert`",
            )
        return cls(
            task=description.task or "raw",
            labels=description.labels,
            preprocessing=pre,
            postprocessing=description.postprocessing,
            size=pre.size,
        )

    @property
    def channels_first(self) -> bool:
        return self.preprocessing.layout == "NCHW"

    def frame_shape(self) -> tuple[int, ...]:
        """The model input one camera frame becomes: (1, H, W, C), or (1, C, H, W) for NCHW."""
        height, width = self.size
        channels = 1 if self.preprocessing.color == "gray" else 3
        return (1, channels, height, width) if self.channels_first else (1, height, width, channels)

    def check_input(self, spec: Any, model: Path) -> None:
        """The manifest's image size, colour and layout must match the model's input tensor."""
        expected = self.frame_shape()
        declared = tuple(spec.shape)
        if len(declared) != 4 or any(d is not None and d != e for d, e in zip(declared, expected, strict=True)):
            raise DataError(
                f"{model.name}: the manifest says frames become {format_shape(expected)}, "
                f"but the model's input is {format_shape(spec.shape)}",
                hint="re-run `edgekit convert` so the manifest matches the model",
            )

    def fit(self, model: Any, path: Path) -> None:
        """Check that the loaded ``model`` takes one camera frame as this contract makes it, and
        prepare it at the frame's size (a dynamic input now, not at the first frame)."""
        if len(model.inputs) != 1:
            raise ConfigError(
                f"{path.name} has {len(model.inputs)} inputs; the daemon feeds one camera frame to one input",
                hint="bench or compare it instead (edgekit bench --data)",
            )
        self.check_input(model.inputs[0], path)
        model.prepare({model.inputs[0].name: self.frame_shape()})

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        image = preprocess_image(frame_bgr, self.preprocessing)
        if self.channels_first:
            image = image.transpose(2, 0, 1)
        return image[np.newaxis, ...]

    def interpret(
        self, outputs: dict[str, np.ndarray], frame_shape: tuple[int, ...], *, threshold: float, top_k: int
    ) -> list[dict[str, Any]]:
        """The model's outputs → predictions a subscriber can use."""
        output = next(iter(outputs.values()))
        if self.task in CLASSIFICATION_TASKS:
            scores = output.reshape(-1).astype(float)
            if self.task == "binary-classification" or scores.size == 1:
                p = float(scores[0])
                names = self.labels or ["negative", "positive"]
                return [{"label": names[int(p >= 0.5)], "score": round(max(p, 1 - p), 4)}]
            order = np.argsort(-scores)[:top_k]
            return [
                {
                    "label": self.labels[i] if self.labels else str(int(i)),
                    "class": int(i),
                    "score": round(float(scores[i]), 4),
                }
                for i in order
                if scores[i] >= threshold or i == order[0]
            ]
        if self.task == "detection" and self.postprocessing:
            spec = GridSpec.from_dict(self.postprocessing.model_dump())
            found = detect(output[0], spec, score_threshold=threshold)
            height, width = frame_shape[:2]
            sy, sx = height / spec.image_size[0], width / spec.image_size[1]
            return [
                {
                    "label": self.labels[int(c)] if self.labels else str(int(c)),
                    "class": int(c),
                    "score": round(float(s), 4),
                    # box in frame pixels: x1, y1, x2, y2
                    "box": [
                        round(float(b[0] * sx), 1),
                        round(float(b[1] * sy), 1),
                        round(float(b[2] * sx), 1),
                        round(float(b[3] * sy), 1),
                    ],
                }
                for b, s, c in zip(found.boxes, found.scores, found.classes, strict=True)
            ]
        return raw_outputs(outputs)


# A raw result carries at most this many values per output: a camera's results stream must stay
# small whatever the model emits (a face detector's 896 × 16 regressors, a segmentation mask).
RAW_VALUES_PER_OUTPUT = 64


def raw_outputs(outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Outputs edgekit cannot decode, published as they are: name, shape, the first values."""
    published = []
    for name, value in outputs.items():
        flat = np.asarray(value).reshape(-1)
        values = flat[:RAW_VALUES_PER_OUTPUT]
        published.append(
            {
                "output": name,
                "shape": [int(d) for d in np.shape(value)],
                "dtype": str(flat.dtype),
                "values": values.round(5).tolist() if values.dtype.kind == "f" else values.tolist(),
                "truncated": bool(flat.size > RAW_VALUES_PER_OUTPUT),
            }
        )
    return published
