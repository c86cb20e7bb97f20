"""A video of circles, squares and triangles moving across the frame, written with OpenCV.

The daemon's demo, tests and benchmarks read it through cv2.VideoCapture like a real camera
recording; the shapes look like what the shapes detector learned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.examples.shapes_data import CLASSES, draw_shape


def write_shapes_video(
    path: Path, *, frames: int = 300, width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0
) -> Path:
    """Write an MJPG .avi (readable by every OpenCV build) and return its path."""
    import cv2

    rng = np.random.default_rng(seed)
    count = 3
    kinds = rng.integers(0, len(CLASSES), size=count)
    sizes = rng.uniform(0.18, 0.3, size=count) * min(width, height)
    position = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height], size=(count, 2))
    velocity = rng.uniform(-6, 6, size=(count, 2))
    colours: list[tuple[int, int, int]] = [
        (int(r), int(g), int(b)) for r, g, b in rng.integers(40, 256, size=(count, 3))
    ]
    background = np.full((height, width, 3), 30, dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for _ in range(frames):
            frame = background.copy()
            for i in range(count):
                margin = sizes[i] * 0.75
                for axis, limit in ((0, width), (1, height)):
                    if not margin <= position[i, axis] + velocity[i, axis] <= limit - margin:
                        velocity[i, axis] *= -1
                position[i] += velocity[i]
                draw_shape(frame, CLASSES[kinds[i]], position[i, 0], position[i, 1], sizes[i], 0.0, colours[i])
            writer.write(frame)
    finally:
        writer.release()
    return Path(path)
