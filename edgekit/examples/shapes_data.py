"""Images of circles, squares and triangles rendered with OpenCV, with their boxes.

The detector example trains on these and the daemon's demo video is made of them, so a frame
from the video looks like what the detector learned.
"""

from __future__ import annotations

import math

import numpy as np

CLASSES = ("circle", "square", "triangle")
MIN_SIZE, MAX_SIZE = 10, 30


def _colour(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    """A random colour that stands out from the background (contrast ≥ 80 on some channel)."""
    while True:
        colour = rng.integers(0, 256, size=3)
        if np.max(np.abs(colour.astype(int) - background.astype(int))) >= 80:
            return int(colour[0]), int(colour[1]), int(colour[2])


def _polygon(kind: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    corners: list[tuple[float, float]]
    if kind == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        radius = size / 2
    else:  # triangle: equilateral, pointing up before rotation
        corners = [(0, -1), (math.cos(math.radians(30)), 0.5), (-math.cos(math.radians(30)), 0.5)]
        radius = size / 2
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    points = [(cx + radius * (x * cos_a - y * sin_a), cy + radius * (x * sin_a + y * cos_a)) for x, y in corners]
    return np.asarray(points, dtype=np.float32)


def draw_shape(
    image: np.ndarray, kind: str, cx: float, cy: float, size: float, angle: float, colour: tuple[int, int, int]
) -> tuple[float, float, float, float]:
    """Draw one filled shape on ``image`` (in place); returns its box x1, y1, x2, y2 in pixels."""
    import cv2

    if kind == "circle":
        radius = size / 2
        cv2.circle(image, (round(cx), round(cy)), round(radius), colour, thickness=-1, lineType=cv2.LINE_AA)
        return cx - radius, cy - radius, cx + radius, cy + radius
    points = _polygon(kind, cx, cy, size, angle)
    cv2.fillPoly(image, [np.round(points).astype(np.int32)], colour, lineType=cv2.LINE_AA)
    return float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max())


def _overlaps(box: tuple[float, ...], placed: list[tuple[float, ...]]) -> bool:
    for other in placed:
        ix = min(box[2], other[2]) - max(box[0], other[0])
        iy = min(box[3], other[3]) - max(box[1], other[1])
        if ix > -2 and iy > -2:  # keep a small gap so every shape is seen whole
            return True
    return False


def render_scene(
    rng: np.random.Generator, height: int, width: int, max_objects: int = 4
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One RGB uint8 image and its objects as (class, x1, y1, x2, y2) in pixels."""
    background = rng.integers(0, 256, size=3)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = background
    # A soft gradient and sensor-like noise, so the model cannot key on a flat background.
    ramp = np.linspace(-25, 25, width)[None, :, None] * rng.uniform(-1, 1)
    noisy = image.astype(np.float32) + ramp + rng.normal(0, 6, size=image.shape)
    image = np.clip(noisy, 0, 255).astype(np.uint8)

    objects: list[tuple[int, float, float, float, float]] = []
    placed: list[tuple[float, ...]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            kind_id = int(rng.integers(0, len(CLASSES)))
            size = float(rng.uniform(MIN_SIZE, min(MAX_SIZE, height / 2)))
            margin = size / 2 * math.sqrt(2) + 1  # a rotated square's corners stay inside
            cx = float(rng.uniform(margin, width - margin))
            cy = float(rng.uniform(margin, height - margin))
            angle = float(rng.uniform(-0.3, 0.3))
            if CLASSES[kind_id] == "circle":
                box = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
            else:
                points = _polygon(CLASSES[kind_id], cx, cy, size, angle)
                box = (points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max())
            if not _overlaps(box, placed):
                box = draw_shape(image, CLASSES[kind_id], cx, cy, size, angle, _colour(rng, background))
                placed.append(box)
                objects.append((kind_id, *box))
                break
    return image, objects


def render_dataset(
    count: int, seed: int, height: int = 64, width: int = 64
) -> tuple[np.ndarray, list[list[tuple[int, float, float, float, float]]]]:
    """``count`` images (N, H, W, 3) uint8 and, per image, its objects."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, height, width, 3), dtype=np.uint8)
    annotations = []
    for i in range(count):
        images[i], objects = render_scene(rng, height, width)
        annotations.append(objects)
    return images, annotations
