"""Architectures for speed work: the ones published device measurements name, and the ones
`edgekit profiles calibrate` times on this machine.

Latency does not depend on weight values, so every model is built with random weights
(``keras.applications`` with ``weights=None``); nothing is downloaded. Three architectures that
``keras.applications`` lacks are built here from their papers: SqueezeNet 1.1, ResNet-18 and
EfficientNet-Lite (EfficientNet without squeeze-excite, ReLU6 everywhere, stem and head fixed).
Building needs TensorFlow (``edgekit[convert]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit.errors import UnknownNameError


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    build: Callable[[], Any]


def _app(name: str, size: int = 224, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        import keras

        return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), **kwargs)

    return build


def _squeezenet() -> Any:
    """SqueezeNet 1.1 (Iandola et al. 2016, the v1.1 revision), 227×227 input."""
    import keras
    from keras import layers

    def fire(x: Any, squeeze: int, expand: int) -> Any:
        s = layers.Conv2D(squeeze, 1, activation="relu")(x)
        left = layers.Conv2D(expand, 1, activation="relu")(s)
        right = layers.Conv2D(expand, 3, padding="same", activation="relu")(s)
        return layers.Concatenate()([left, right])

    inputs = keras.Input((227, 227, 3))
    x = layers.Conv2D(64, 3, strides=2, activation="relu")(inputs)
    x = layers.MaxPooling2D(3, 2)(x)
    x = fire(x, 16, 64)
    x = fire(x, 16, 64)
    x = layers.MaxPooling2D(3, 2)(x)
    x = fire(x, 32, 128)
    x = fire(x, 32, 128)
    x = layers.MaxPooling2D(3, 2)(x)
    for squeeze, expand in ((48, 192), (48, 192), (64, 256), (64, 256)):
        x = fire(x, squeeze, expand)
    x = layers.Conv2D(1000, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Softmax()(x), name="squeezenet_1_1")


def _resnet18() -> Any:
    """ResNet-18 (He et al. 2016), basic blocks, 224×224 input."""
    import keras
    from keras import layers

    def block(x: Any, filters: int, stride: int) -> Any:
        shortcut = x
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.BatchNormalization()(layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x))
        return layers.ReLU()(layers.Add()([y, shortcut]))

    inputs = keras.Input((224, 224, 3))
    x = layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    for filters, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
        x = block(x, filters, stride)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(1000, activation="softmax")(x), name="resnet18")


# EfficientNet-B0 blocks: (repeats, kernel, stride, expand ratio, input filters, output filters)
_EFFICIENTNET_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# EfficientNet-Lite0..4: (width, depth, resolution), from the EfficientNet-Lite release.
_LITE_SCALING = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters = int(filters * width)
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * filters else rounded


def _efficientnet_lite(level: int) -> Callable[[], Any]:
    def build() -> Any:
        import keras
        from keras import layers

        width, depth, size = _LITE_SCALING[level]
        inputs = keras.Input((size, size, 3))
        x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inputs)  # stem not scaled
        x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
        for index, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_EFFICIENTNET_BLOCKS):
            f_in, f_out = _round_filters(f_in, width), _round_filters(f_out, width)
            # The first and last stages are not repeated more in the Lite variants.
            count = repeats if index in (0, len(_EFFICIENTNET_BLOCKS) - 1) else int(math.ceil(depth * repeats))
            for i in range(count):
                block_in = x
                channels = x.shape[-1]
                if expand != 1:
                    x = layers.Conv2D(channels * expand, 1, use_bias=False)(x)
                    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
                x = layers.DepthwiseConv2D(kernel, strides=stride if i == 0 else 1, padding="same", use_bias=False)(x)
                x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
                x = layers.BatchNormalization()(layers.Conv2D(f_out, 1, use_bias=False)(x))
                if i > 0 or (stride == 1 and f_in == f_out):
                    x = layers.Add()([x, block_in])
        x = layers.Conv2D(1280, 1, use_bias=False)(x)  # head not scaled
        x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(1000, activation="softmax")(x), name=f"efficientnet_lite{level}")

    return build


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("mobilenet_v1", "MobileNet 1.0 224", _app("MobileNet")),
        Architecture("mobilenet_v2", "MobileNetV2 1.0 224", _app("MobileNetV2")),
        Architecture("mobilenet_v2_035", "MobileNetV2 0.35 224", _app("MobileNetV2", alpha=0.35)),
        Architecture("mobilenet_v3_small", "MobileNetV3 Small 224", _app("MobileNetV3Small")),
        Architecture("mobilenet_v3_large", "MobileNetV3 Large 224", _app("MobileNetV3Large")),
        Architecture("efficientnet_b0", "EfficientNet-B0 224", _app("EfficientNetB0")),
        Architecture("resnet50", "ResNet-50 224", _app("ResNet50")),
        Architecture("densenet121", "DenseNet-121 224", _app("DenseNet121")),
        Architecture("nasnet_mobile", "NASNet-A Mobile 224", _app("NASNetMobile")),
        Architecture("vgg16", "VGG-16 224", _app("VGG16")),
        Architecture("xception", "Xception 224", _app("Xception")),
        Architecture("efficientnet_v2_b0", "EfficientNetV2-B0 224", _app("EfficientNetV2B0")),
        Architecture("inception_resnet_v2", "Inception-ResNet-v2 299", _app("InceptionResNetV2", 299)),
        # The second unseen set of benchmarks/predict.py (issue 16): nowhere in calibration or references.
        Architecture("inception_v3", "Inception-v3 299", _app("InceptionV3", 299)),
        Architecture("resnet101", "ResNet-101 224", _app("ResNet101")),
        Architecture("convnext_tiny", "ConvNeXt-Tiny 224", _app("ConvNeXtTiny")),
        Architecture("densenet169", "DenseNet-169 224", _app("DenseNet169")),
        Architecture("efficientnet_b2", "EfficientNet-B2 260", _app("EfficientNetB2", 260)),
        Architecture(
            "mobilenet_v3_small_minimalistic",
            "MobileNetV3 Small minimalistic 224",
            _app("MobileNetV3Small", minimalistic=True),
        ),
        Architecture("squeezenet", "SqueezeNet 1.1 227", _squeezenet),
        Architecture("resnet18", "ResNet-18 224", _resnet18),
        *(Architecture(f"efficientnet_lite{i}", f"EfficientNet-Lite{i}", _efficientnet_lite(i)) for i in range(5)),
    )
}


def build(name: str) -> Any:
    if name not in ARCHITECTURES:
        raise UnknownNameError("architecture", name, ARCHITECTURES)
    return ARCHITECTURES[name].build()
