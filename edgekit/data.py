"""Calibration and evaluation data: loaded, matched to the model's inputs and checked.

Accepted:
- an example's ``data.npz``: ``calib/<input>`` for calibration, ``test/<input>`` with
  ``test_labels`` (or ``test_boxes``) for evaluation;
- any ``.npz`` whose keys are the model's input names (or a single ``x``), labels in ``y``;
- a ``.npy`` array for a single-input model;
- a folder of images, preprocessed as the example's ``example.json`` (or the flags) say,
  unlabelled, or labelled by sub-folder (one per class, named as the model's labels).

Everything is loaded with ``allow_pickle=False``: a data file never runs code.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from edgekit.errors import DataError, InputNotFoundError
from edgekit.foreign import OPENCV_IMAGE, mapped
from edgekit.manifest import ImagePreprocessing, Preprocessing
from edgekit.runtimes.base import TensorSpec, format_shape

DEFAULT_CALIBRATION_SAMPLES = 200
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class Split(str, Enum):
    CALIBRATION = "calib"
    EVALUATION = "test"


@dataclass
class Dataset:
    """N samples per model input. An array holds them one of two ways: ``(N, ...)`` where the
    model's own leading dimension is a batch (a sample is ``array[i:i+1]``, batch 1), or as N
    whole inputs stacked on a new axis (names in ``whole``: a sample is ``array[i]``), which is
    how a recurrent state ``[2, 1, 128]`` or a scalar is given."""

    inputs: dict[str, np.ndarray]  # data name → (N, ...) array
    labels: np.ndarray | None = None
    boxes: np.ndarray | None = None  # detection truth: (image, class, x1, y1, x2, y2) in 0..1
    origin: str = ""
    whole: frozenset[str] = frozenset()

    def sample(self, index: int, key: str) -> np.ndarray:
        """Sample ``index`` of array ``key``, shaped as the model input takes it."""
        array = self.inputs[key]
        return array[index] if key in self.whole else array[index : index + 1]

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape one sample of each input has: what ``--data`` fixes a dynamic input to."""
        return {
            key: tuple(int(d) for d in (array.shape[1:] if key in self.whole else (1, *array.shape[1:])))
            for key, array in self.inputs.items()
        }

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, indices: np.ndarray) -> Dataset:
        boxes = None
        if self.boxes is not None:
            # Keep the boxes of the chosen images and renumber them 0..len(indices)-1.
            position = {int(old): new for new, old in enumerate(indices)}
            keep = np.isin(self.boxes[:, 0].astype(int), indices)
            boxes = self.boxes[keep].copy()
            boxes[:, 0] = [position[int(i)] for i in boxes[:, 0]]
        return Dataset(
            inputs={k: v[indices] for k, v in self.inputs.items()},
            labels=None if self.labels is None else self.labels[indices],
            boxes=boxes,
            origin=self.origin,
            whole=self.whole,
        )

    def key_for(self, input_name: str) -> str:
        """The array feeding model input ``input_name``: the same name, or one contained in it
        (data keyed ``image`` feeds a converter's ``serving_default_image:0``)."""
        ranked = [(rank, key) for key in self.inputs if (rank := match_rank(key, input_name)) is not None]
        if ranked:
            return min(ranked, key=lambda pair: pair[0])[1]
        raise DataError(f"{self.origin}: no array feeds model input '{input_name}' (arrays: {sorted(self.inputs)})")

    def subset(self, count: int) -> Dataset:
        """A deterministic, evenly spread subset of at most ``count`` samples."""
        if len(self) <= count:
            return self
        return self.take(np.unique(np.linspace(0, len(self) - 1, count).round().astype(int)))


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataError(f"{path} holds Python objects, which edgekit does not load", hint="save plain arrays") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from exc


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path} holds Python objects, which edgekit does not load", hint="save plain arrays") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npy file ({exc})") from exc


def preprocess_image(image_bgr: np.ndarray, preprocessing: ImagePreprocessing) -> np.ndarray:
    """A camera/file image (BGR uint8, as OpenCV reads it) → model input, per the preprocessing record."""
    import cv2

    if preprocessing.size is None:
        raise DataError("the image preprocessing has no size", hint="give --image-size HxW")
    height, width = preprocessing.size
    interpolation = cv2.INTER_AREA if preprocessing.resize == "area" else cv2.INTER_LINEAR
    resized = cv2.resize(image_bgr, (width, height), interpolation=interpolation)
    colour = preprocessing.color
    if colour == "gray":
        pixels = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[..., np.newaxis]
    elif colour == "rgb":
        pixels = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    else:
        pixels = resized
    scaled = pixels.astype(np.float32) * float(preprocessing.scale) + float(preprocessing.offset)
    return scaled.astype(preprocessing.dtype)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_image_folder(
    folder: Path, preprocessing: Preprocessing | None, class_names: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images directly in ``folder`` (no labels), or in one sub-folder per class (labelled by the
    sub-folder's position in ``class_names``, the model's labels, else in sorted order)."""
    import cv2

    files = _image_files(folder)
    labels: list[int] | None = None
    if not files:
        classes = sorted(p for p in folder.iterdir() if p.is_dir() and _image_files(p))
        names = [c.name for c in classes]
        if class_names and all(n in class_names for n in names):
            index = {n: class_names.index(n) for n in names}
        else:
            index = {n: i for i, n in enumerate(names)}
        labels = []
        for directory in classes:
            found = _image_files(directory)
            files += found
            labels += [index[directory.name]] * len(found)
    if not files:
        raise DataError(
            f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), nor sub-folders of them (one per class)",
            hint="point --calib/--eval/--data at a folder of images",
        )
    if not isinstance(preprocessing, ImagePreprocessing) or preprocessing.size is None:
        raise DataError(
            f"no image preprocessing is known for {folder}",
            hint="keep the example's example.json beside the model, or give --image-size, --color and --scale",
        )
    images = []
    for file in files:
        with mapped(OPENCV_IMAGE, f"{file} could not be read as an image"):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise DataError(f"{file} could not be read as an image")
            images.append(preprocess_image(image, preprocessing))
    return np.stack(images), None if labels is None else np.asarray(labels, dtype=np.int64)


def match_rank(key: str, input_name: str) -> int | None:
    """The one rule for which array (or request key) feeds which model input, best first:
    0 the same name, 1 the same without the ``:0`` port, 2 the input's name ending in
    ``_<key>`` (a converter's ``serving_default_image:0`` for ``image``), 3 a part of its name;
    None: it does not feed it. Where several could, the best rank decides."""
    short, key_short = input_name.split(":")[0], key.split(":")[0]
    if key == input_name:
        return 0
    if key_short == short:
        return 1
    if short.endswith(f"_{key_short}"):
        return 2
    return 3 if key_short and key_short in short else None


def best_match(key: str, names: Iterable[str], *, loosest: int = 3) -> str | None:
    """The name ``key`` feeds by ``match_rank`` (the first of the best), none past ``loosest``."""
    ranked = [(rank, name) for name in names if (rank := match_rank(key, name)) is not None and rank <= loosest]
    return min(ranked, key=lambda pair: pair[0])[1] if ranked else None


def match_inputs(data_names: list[str], specs: list[TensorSpec], origin: str) -> dict[str, str]:
    """Data key → model input name: exact, or contained in the input's name, or the only one."""
    if len(specs) == 1 and len(data_names) == 1:
        return {data_names[0]: specs[0].name}
    mapping = {}
    for spec in specs:
        ranks = {n: rank for n in data_names if (rank := match_rank(n, spec.name)) is not None}
        found = [n for n, rank in ranks.items() if rank == min(ranks.values())]
        if len(found) != 1:
            raise DataError(
                f"{origin}: cannot tell which array feeds model input '{spec.name}' (arrays: {sorted(data_names)})",
                hint="name each array after the model input it feeds",
            )
        mapping[found[0]] = spec.name
    return mapping


def check_data_path(path: Path, flag: str) -> None:
    """The cheap checks on a data path (exists, a kind edgekit reads), made before a model loads."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{flag} {path} does not exist")
    if not path.is_dir() and path.suffix not in (".npz", ".npy"):
        raise DataError(f"{flag} {path.name}: data must be .npz, .npy or a folder of images")


def load_dataset(
    path: Path,
    split: Split,
    specs: list[TensorSpec],
    *,
    preprocessing: Preprocessing | None = None,
    class_names: list[str] | None = None,
    layout: dict[str, list[int]] | None = None,
) -> Dataset:
    """Load ``path`` for ``split``, keyed by model input name, and check it against ``specs``.
    ``layout``: input name → the axis order a converter gave it (the manifest's record of
    onnx2tf's NCHW → NHWC): data made for the source is laid out for the artifact."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"data {path} does not exist")
    labels = boxes = None
    if path.is_dir():
        images, labels = _load_image_folder(path, preprocessing, class_names)
        arrays = {specs[0].name: images}
    elif path.suffix == ".npy":
        arrays = {specs[0].name: _load_npy(path)}
    elif path.suffix == ".npz":
        content = _load_npz(path)
        prefix = f"{split.value}/"
        split_keys = {k[len(prefix) :]: v for k, v in content.items() if k.startswith(prefix)}
        if split_keys:
            arrays = split_keys
            if split is Split.EVALUATION:
                labels, boxes = content.get("test_labels"), content.get("test_boxes")
        elif any(k.startswith(("calib/", "test/")) for k in content):
            other = "calibration" if split is Split.EVALUATION else "evaluation"
            raise DataError(f"{path} has no {split.value}/ arrays (only {other} data)")
        else:
            labels = content.pop("y", None)
            arrays = content
    else:
        raise DataError(f"{path.name}: data must be .npz, .npy or a folder of images")
    if not arrays:
        raise DataError(f"{path} holds no arrays")
    mapping = match_inputs(list(arrays), specs, path.name)
    inputs = {mapping[k]: v for k, v in arrays.items() if k in mapping}
    for name, order in (layout or {}).items():
        if name in inputs:
            array = inputs[name]
            if array.ndim not in (len(order), len(order) + 1):
                raise DataError(
                    f"{path.name}: input '{name}' has an array of shape {format_shape(array.shape)}; the model "
                    f"expects {len(order)}-D inputs"
                )
            # (N, C, H, W): the order as it is; (N, 1, C, H, W), N whole inputs: past the stacking axis.
            shift = 0 if array.ndim == len(order) else 1
            inputs[name] = array.transpose(*range(shift), *(i + shift for i in order))
    dataset = Dataset(inputs, labels, boxes, origin=str(path))
    dataset.whole = validate_dataset(dataset, specs)
    return dataset


def _layout(array: np.ndarray, spec: TensorSpec, where: str) -> bool:
    """Whether ``array`` stacks N whole inputs (True) or is batched along the model's own
    leading dimension (False), checked against the input's declared shape."""
    rank = len(spec.shape)
    if array.ndim == rank + 1:
        got, want = tuple(array.shape[1:]), spec.shape
        whole = True
    elif array.ndim == rank and rank >= 1 and spec.shape[0] in (None, 1):
        got, want = tuple(array.shape[1:]), spec.shape[1:]  # the leading axis is the batch
        whole = False
    else:
        example = format_shape(("N", *["?" if d is None else d for d in spec.shape]))
        raise DataError(
            f"{where} has an array of shape {format_shape(array.shape)}; the model expects inputs of "
            f"{format_shape(spec.shape)}",
            hint=f"give N samples as one array of shape {example}",
        )
    if any(w is not None and w != g for w, g in zip(want, got, strict=True)):
        raise DataError(f"{where} has samples of shape {format_shape(got)}, the model expects {format_shape(want)}")
    return whole


def validate_dataset(dataset: Dataset, specs: list[TensorSpec]) -> frozenset[str]:
    """Shape, dtype, emptiness and NaN checks, each naming the input and what was expected;
    returns the inputs whose arrays stack whole inputs (see ``Dataset``)."""
    counts = set()
    whole = set()
    for spec in specs:
        array = dataset.inputs[spec.name]
        where = f"{Path(dataset.origin).name}: input '{spec.name.split(':')[0]}'"
        if array.size == 0 or array.ndim == 0:
            raise DataError(f"{where} is empty", hint="give at least one sample")
        if _layout(array, spec, where):
            whole.add(spec.name)
        expected_float = spec.float_dtype.startswith("float")
        if array.dtype.kind not in "fiub":
            raise DataError(f"{where} has dtype {array.dtype}, the model expects {spec.float_dtype}")
        if expected_float and array.dtype.kind != "f":
            raise DataError(f"{where} has dtype {array.dtype}, the model expects {spec.float_dtype} values")
        if not expected_float and array.dtype.kind == "f":
            raise DataError(f"{where} has dtype {array.dtype}, the model expects {spec.dtype} ids")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise DataError(f"{where} contains NaN or infinite values", hint="clean the data first")
        counts.add(len(array))
    if len(counts) > 1:
        raise DataError(f"{dataset.origin}: inputs have different sample counts {sorted(counts)}")
    if dataset.labels is not None and len(dataset.labels) != len(dataset):
        raise DataError(f"{dataset.origin}: {len(dataset.labels)} labels for {len(dataset)} samples")
    return frozenset(whole)
