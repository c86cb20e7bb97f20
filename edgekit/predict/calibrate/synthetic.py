"""The calibration set's synthetic graphs: small Keras models, each dominated by one cost term.

``SYNTHETIC`` maps a name to the function that builds it; the order is the calibration's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# build(input_shape, body) → a Keras model: what each builder calls with its layers.
Build = Callable[[tuple[int, ...], Callable[[Any], Any]], Any]
Builder = Callable[[Build], Any]


def _repeat(x: Any, times: int, layer: Callable[[Any], Any]) -> Any:
    for _ in range(times):
        x = layer(x)
    return x


def _conv3x3_stack(build: Build) -> Any:
    from keras import layers

    return build(
        (56, 56, 32), lambda x: _repeat(x, 4, lambda y: layers.Conv2D(64, 3, padding="same", activation="relu")(y))
    )


def _narrow_conv_stack(build: Build) -> Any:
    from keras import layers

    return build(
        (56, 56, 24),
        lambda x: _repeat(x, 8, lambda y: layers.Conv2D(40, 1, activation="relu")(layers.Conv2D(24, 1)(y))),
    )


def _depthwise5_stack(build: Build) -> Any:
    from keras import layers

    return build(
        (56, 56, 48),
        lambda x: _repeat(x, 6, lambda y: layers.DepthwiseConv2D(5, padding="same", activation="relu")(y)),
    )


def _depthwise7_stack(build: Build) -> Any:
    from keras import layers

    return build(
        (56, 56, 32),
        lambda x: _repeat(x, 4, lambda y: layers.DepthwiseConv2D(7, padding="same", activation="relu")(y)),
    )


def _swish_depthwise(build: Build) -> Any:
    from keras import layers

    # A depthwise convolution feeding a swish: ONNX Runtime cannot fuse it into an int8
    # kernel, so a quantized graph runs it in float.
    return build(
        (56, 56, 64),
        lambda x: _repeat(x, 4, lambda y: layers.Activation("swish")(layers.DepthwiseConv2D(3, padding="same")(y))),
    )


def _swish_depthwise_small(build: Build) -> Any:
    from keras import layers

    # The same at the late stages' size: many channels, few pixels each.
    return build(
        (14, 14, 240),
        lambda x: _repeat(x, 6, lambda y: layers.Activation("swish")(layers.DepthwiseConv2D(5, padding="same")(y))),
    )


def _narrow_depthwise(build: Build) -> Any:
    from keras import layers

    # Depthwise convolutions on channel counts no vector block divides (a searched cell's 44):
    # ONNX Runtime's int8 kernel runs the remainder channels in a scalar loop.
    def narrow(y: Any) -> Any:
        for kernel in (3, 5, 3, 5, 3, 5):
            y = layers.DepthwiseConv2D(kernel, padding="same", activation="relu")(y)
            y = layers.Conv2D(44, 1, activation="relu")(y)
        return y

    return build((28, 28, 44), narrow)


def _hard_swish_chain(build: Build) -> Any:
    from keras import layers

    def hard_swishes(y: Any) -> Any:
        for _ in range(10):
            y = layers.Conv2D(32, 1)(layers.Activation("hard_swish")(y))
        return y

    return build((56, 56, 32), hard_swishes)


def _pool_stack(build: Build) -> Any:
    from keras import layers

    def pools(y: Any) -> Any:
        for _ in range(6):
            avg = layers.AveragePooling2D(3, strides=1, padding="same")(y)
            y = layers.Add()([layers.MaxPooling2D(3, strides=1, padding="same")(y), avg])
        return layers.GlobalAveragePooling2D()(y)

    return build((56, 56, 32), pools)


def _quantized_pools(build: Build) -> Any:
    from keras import layers

    # Pools where a quantized graph keeps them on 8-bit data: a max pool of a concatenation (ONNX
    # Runtime leaves it between quantize and dequantize, in NCHW) and an average pool feeding a
    # convolution (fused to a QLinearAveragePool, NCHW but for the last, which sits between two
    # int8 convolutions and runs channels-last). The NCHW ones run scalar loops there.
    def pools(y: Any) -> Any:
        for _ in range(3):
            left = layers.Conv2D(24, 1, activation="relu")(y)
            right = layers.Conv2D(24, 3, padding="same", activation="relu")(y)
            y = layers.MaxPooling2D(3, strides=1, padding="same")(layers.Concatenate()([left, right]))
            y = layers.Conv2D(48, 1)(layers.AveragePooling2D(3, strides=1, padding="same")(layers.Conv2D(48, 1)(y)))
        return y

    return build((28, 28, 48), pools)


def _pad_slice(build: Build) -> Any:
    from keras import layers

    def pads(y: Any) -> Any:
        for _ in range(10):
            y = layers.Cropping2D(1)(layers.ZeroPadding2D(1)(y))
            y = layers.Conv2D(32, 1)(y)
        return y

    return build((56, 56, 32), pads)


def _conv1x1_stack(build: Build) -> Any:
    from keras import layers

    return build((28, 28, 128), lambda x: _repeat(x, 6, lambda y: layers.Conv2D(256, 1, activation="relu")(y)))


def _depthwise_stack(build: Build) -> Any:
    from keras import layers

    return build(
        (112, 112, 64),
        lambda x: _repeat(x, 8, lambda y: layers.DepthwiseConv2D(3, padding="same", activation="relu")(y)),
    )


def _dense_stack(build: Build) -> Any:
    from keras import layers

    return build((1024,), lambda x: _repeat(x, 4, lambda y: layers.Dense(1536, activation="relu")(y)))


def _elementwise_chain(build: Build) -> Any:
    from keras import layers

    def swishes(y: Any) -> Any:
        for _ in range(12):
            y = layers.Multiply()([y, layers.Activation("sigmoid")(y)])
            y = layers.Add()([y, y])
        return y

    return build((56, 56, 64), swishes)


def _concat_blocks(build: Build) -> Any:
    from keras import layers

    def dense_block(y: Any) -> Any:
        for _ in range(8):
            new = layers.Conv2D(16, 3, padding="same", activation="relu")(y)
            y = layers.Concatenate()([y, new])
        return y

    return build((28, 28, 32), dense_block)


def _squeeze_excite(build: Build) -> Any:
    from keras import layers

    def se(y: Any) -> Any:
        for _ in range(6):
            s = layers.GlobalAveragePooling2D(keepdims=True)(y)
            s = layers.Conv2D(32, 1, activation="relu")(s)
            s = layers.Conv2D(128, 1, activation="hard_sigmoid")(s)
            y = layers.Multiply()([y, s])
            y = layers.Conv2D(128, 1)(y)
        return y

    return build((28, 28, 128), se)


def _separable_cells(build: Build) -> Any:
    from keras import layers

    # Cells of a searched architecture: a ReLU before every narrow separable convolution
    # (3×3, 5×5, 7×7, channel counts that fill no vector), pooling branches, adds, a concat.
    def cells(y: Any) -> Any:
        for width in (22, 22, 44, 44):
            relu = layers.ReLU()(y)
            left = layers.Add()(
                [
                    layers.SeparableConv2D(width, 5, padding="same")(relu),
                    layers.SeparableConv2D(width, 7, padding="same")(relu),
                ]
            )
            pooled = layers.AveragePooling2D(3, strides=1, padding="same")(y)
            right = layers.Add()([pooled, layers.SeparableConv2D(int(pooled.shape[-1]), 3, padding="same")(relu)])
            y = layers.Conv2D(width, 1)(layers.Concatenate()([left, right]))
        return y

    return build((56, 56, 22), cells)


def _dense_block(build: Build) -> Any:
    from keras import layers

    # A densely connected block: batch norm and ReLU before every convolution (nothing to
    # fold them into) and a growing concatenation; quantized, each needs its own requantize.
    def block(y: Any) -> Any:
        for _ in range(6):
            z = layers.Conv2D(64, 1)(layers.ReLU()(layers.BatchNormalization()(y)))
            z = layers.Conv2D(16, 3, padding="same")(layers.ReLU()(layers.BatchNormalization()(z)))
            y = layers.Concatenate()([y, z])
        return y

    return build((28, 28, 64), block)


def _tiny_ops(build: Build) -> Any:
    from keras import layers

    def many(y: Any) -> Any:
        for _ in range(150):
            y = layers.Add()([layers.ReLU()(y), y])
        return y

    return build((16, 16, 16), many)


SYNTHETIC: dict[str, Builder] = {
    "conv3x3_stack": _conv3x3_stack,
    "conv1x1_stack": _conv1x1_stack,
    "narrow_conv_stack": _narrow_conv_stack,
    "depthwise_stack": _depthwise_stack,
    "depthwise5_stack": _depthwise5_stack,
    "depthwise7_stack": _depthwise7_stack,
    "swish_depthwise": _swish_depthwise,
    "swish_depthwise_small": _swish_depthwise_small,
    "narrow_depthwise": _narrow_depthwise,
    "hard_swish_chain": _hard_swish_chain,
    "pool_stack": _pool_stack,
    "quantized_pools": _quantized_pools,
    "pad_slice": _pad_slice,
    "dense_stack": _dense_stack,
    "elementwise_chain": _elementwise_chain,
    "concat_blocks": _concat_blocks,
    "squeeze_excite": _squeeze_excite,
    "separable_cells": _separable_cells,
    "dense_block": _dense_block,
    "tiny_ops": _tiny_ops,
}


def build_synthetic(name: str) -> Any:
    """The Keras model ``name`` of ``SYNTHETIC``, its layers freshly initialised."""
    import keras

    def build(shape: tuple[int, ...], body: Callable[[Any], Any]) -> Any:
        inputs = keras.Input(shape)
        return keras.Model(inputs, body(inputs), name=name)

    return SYNTHETIC[name](build)
