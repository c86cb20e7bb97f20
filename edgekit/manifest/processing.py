"""How data reaches a model and how its answer becomes results: the manifest's ``preprocessing``
and ``postprocessing`` records, one per kind, as an example writes them and a device reads them."""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, model_validator


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


ColourOrder = Literal["rgb", "bgr", "gray"]
COLOUR_ORDERS: tuple[str, ...] = get_args(ColourOrder)


def _numpy_dtype(name: str) -> str:
    try:
        np.dtype(name)
    except TypeError:
        raise ValueError(f"{name!r} is not an element type (float32, int8, int64 …)") from None
    return name


# An element type NumPy knows, so a device can cast to it.
DType = Annotated[str, AfterValidator(_numpy_dtype)]
# NHWC or NCHW, as written in either case.
ImageLayout = Annotated[Literal["NHWC", "NCHW"], BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)]


class ImagePreprocessing(_Record):
    """A camera frame or image file (BGR, 0..255) → the model's input."""

    # Fields in the order the examples write them: a manifest lists them so.
    kind: Literal["image"]
    layout: ImageLayout = Field("NHWC", description="where the model wants the channels")
    size: tuple[PositiveInt, PositiveInt] | None = Field(None, description="(height, width) the image is resized to")
    color: ColourOrder = Field("rgb", description="the channel order, or one grey channel")
    resize: Literal["linear", "area"] = Field("linear", description="OpenCV's interpolation for the resize")
    scale: float = Field(1.0, description="input = pixel × scale + offset")
    offset: float = 0.0
    dtype: DType = Field("float32", description="the input's element type")


class TokensPreprocessing(_Record):
    """Text → token ids: split, look up in the vocabulary file beside the model, pad or cut."""

    kind: Literal["tokens"]
    vocabulary: str = Field(description="the vocabulary file's name, one token per line (its line is its id)")
    lowercase: bool = True
    split: Literal["whitespace"] = "whitespace"
    max_len: PositiveInt
    pad_id: int
    oov_id: int = Field(description="the id of a token not in the vocabulary")
    padding: Literal["pre", "post"] = "post"
    dtype: DType = "int32"


class StandardizePreprocessing(_Record):
    """Tabular features → (x − mean) ÷ std, per feature in this order."""

    kind: Literal["standardize"]
    features: list[str]
    mean: list[float]
    std: list[float]
    dtype: DType = "float32"


class IdRange(_Record):
    range: tuple[int, int] = Field(description="the smallest and largest id the model was trained on")
    dtype: DType = "int32"

    @model_validator(mode="after")
    def _ordered(self) -> IdRange:
        if self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)} runs backwards: give [smallest, largest]")
        return self


class IdsPreprocessing(_Record):
    """Integer ids fed as they are (a recommender's user and item), each within its trained range."""

    kind: Literal["ids"]
    inputs: dict[str, IdRange]
    output_range: tuple[float, float] | None = Field(None, description="the range the model's output is clipped to")


# One record per kind; ``kind`` says which (an unknown kind is one line naming the known ones).
Preprocessing = Annotated[
    Union[ImagePreprocessing, TokensPreprocessing, StandardizePreprocessing, IdsPreprocessing],  # noqa: UP007
    Field(discriminator="kind"),
]


class GridPostprocessing(_Record):
    """A YOLO-style grid head's geometry: how raw outputs become boxes (edgekit.tasks.detection)."""

    kind: Literal["yolo-grid"]
    image_size: tuple[PositiveInt, PositiveInt] = Field(description="(height, width) of the model input in pixels")
    grid: tuple[PositiveInt, PositiveInt] = Field(description="(rows, cols) of the output grid")
    anchors: list[tuple[float, float]] = Field(min_length=1, description="(width, height) of each anchor in pixels")
    num_classes: PositiveInt
    score_threshold: float = 0.3
    nms_iou: float = 0.45
    layout: str | None = Field(None, description="the output's layout, for people")
    box_format: str | None = Field(None, description="the boxes' format, for people")
