"""Pre- and post-processing read from the artifact's manifest, not from hand-set flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import preprocess_image
from edgekit.detection import GridSpec, detect
from edgekit.errors import ConfigError, DataError
from edgekit.manifest import model_description
from edgekit.metrics import CLASSIFICATION_TASKS
from edgekit.runtimes.base import format_shape


@dataclass
class ModelContract:
    """What the daemon needs to know about a model to feed it frames and read its answer."""

    task: str
    labels: list[str] | None
    preprocessing: dict[str, Any]
    postprocessing: dict[str, Any] | None

    @classmethod
    def for_model(cls, model: Path) -> ModelContract:
        description = model_description(model)
        pre = description.get("preprocessing")
        if not pre or pre.get("kind") != "image":
            raise ConfigError(
                f"{model.name} has no image preprocessing in its manifest",
                hint="convert it with `edgekit convert` (the manifest records how to feed it camera frames)",
            )
        return cls(
            task=description.get("task") or "raw",
            labels=description.get("labels"),
            preprocessing=pre,
            postprocessing=description.get("postprocessing"),
        )

    def check_input(self, spec: Any, model: Path) -> None:
        """The manifest's image size and colour must match the model's input tensor."""
        height, width = self.preprocessing["size"]
        channels = 1 if self.preprocessing.get("color") == "gray" else 3
        expected = (height, width, channels)
        if tuple(spec.shape[1:]) != expected:
            raise DataError(
                f"{model.name}: the manifest says frames become {format_shape(expected)}, "
                f"but the model's input is {format_shape(spec.shape)}",
                hint="re-run `edgekit convert` so the manifest matches the model",
            )

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        return preprocess_image(frame_bgr, self.preprocessing)[np.newaxis, ...]

    def interpret(
        self, output: np.ndarray, frame_shape: tuple[int, ...], *, threshold: float, top_k: int
    ) -> list[dict[str, Any]]:
        """The model's raw output → predictions a subscriber can use."""
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
            spec = GridSpec.from_dict(self.postprocessing)
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
        return [{"values": np.asarray(output).reshape(-1)[:64].round(5).tolist()}]
