"""The DRN model family (DRN-A, DRN-C, DRN-D) as one table of variants and one builder.

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017. The architecture follows the
official code (github fyu/drn, ``drn.py``) layer for layer, and layer names follow its
``state_dict`` keys (``layer3.0.conv1`` -> layer ``layer3_0``, sublayer ``conv1``), so its
checkpoints map onto these models by name.
"""

from dataclasses import dataclass

import keras
from keras import layers

from keras_drn.layers.dilated_conv import DilatedConv2D
from keras_drn.layers.dilated_residual import (
    ANTI_ALIAS,
    DilatedResidualBlock,
    make_anti_alias,
)
from keras_drn.layers.initializers import reference_conv_initializer
from keras_drn.weights.loading import load_weights, validate_weights_argument

BN_EPSILON = 1e-5  # PyTorch's default; Keras's 1e-3 would change converted outputs
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1
POOLINGS = (None, "avg", "max")


@dataclass(frozen=True)
class DRNVariant:
    """One row of the variant table: ``arch`` "A", "C" or "D", block kind, depth per level."""

    name: str
    arch: str
    block: str
    depths: tuple


VARIANTS = {
    v.name: v
    for v in (
        DRNVariant("drn_a_18", "A", "basic", (2, 2, 2, 2)),
        DRNVariant("drn_a_34", "A", "basic", (3, 4, 6, 3)),
        DRNVariant("drn_a_50", "A", "bottleneck", (3, 4, 6, 3)),
        DRNVariant("drn_c_26", "C", "basic", (1, 1, 2, 2, 2, 2, 1, 1)),
        DRNVariant("drn_c_42", "C", "basic", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_c_58", "C", "bottleneck", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_d_22", "D", "basic", (1, 1, 2, 2, 2, 2, 1, 1)),
        DRNVariant("drn_d_24", "D", "basic", (1, 1, 2, 2, 2, 2, 2, 2)),
        DRNVariant("drn_d_38", "D", "basic", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_d_40", "D", "basic", (1, 1, 3, 4, 6, 3, 2, 2)),
        DRNVariant("drn_d_54", "D", "bottleneck", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_d_56", "D", "bottleneck", (1, 1, 3, 4, 6, 3, 2, 2)),
        DRNVariant("drn_d_105", "D", "bottleneck", (1, 1, 3, 4, 23, 3, 1, 1)),
        DRNVariant("drn_d_107", "D", "bottleneck", (1, 1, 3, 4, 23, 3, 2, 2)),
    )
}

# DRN-C/D levels: (level, channels, stride, dilation, unit). Units: "early" (levels 1-2:
# residual basic blocks in C, plain conv-BN-ReLU in D), "block" (the variant's block), and
# "degrid" (levels 7-8: basic blocks without residual in C, plain convs in D).
CD_LEVELS = (
    (1, 16, 1, 1, "early"),
    (2, 32, 2, 1, "early"),
    (3, 64, 2, 1, "block"),
    (4, 128, 2, 1, "block"),
    (5, 256, 1, 2, "block"),
    (6, 512, 1, 4, "block"),
    (7, 512, 1, 2, "degrid"),
    (8, 512, 1, 1, "degrid"),
)
# DRN-A levels after the ResNet stem: (level, planes, stride, dilation). As in the reference,
# the first block of a dilated level keeps dilation 1.
A_LEVELS = ((1, 64, 1, 1), (2, 128, 2, 1), (3, 256, 1, 2), (4, 512, 1, 4))


def _bn(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _conv(filters, kernel_size, name, strides=1, dilation=1):
    return DilatedConv2D(
        filters,
        kernel_size,
        strides=strides,
        dilation_rate=dilation,
        padding="valid" if strides > 1 else "same",
        use_bias=False,
        kernel_initializer=reference_conv_initializer(),
        name=name,
    )


def _strided_conv(x, filters, kernel_size, name):
    """Stride-2 conv with PyTorch's symmetric padding (TF "same" pads (0, 1) at even sizes)."""
    x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
    return _conv(filters, kernel_size, name, strides=2)(x)


def _block_level(x, level, block, planes, count, stride, dilation, first_dilation, anti_alias,
                 residual=True):
    for i in range(count):
        x = DilatedResidualBlock(
            planes,
            block=block,
            strides=stride if i == 0 else 1,
            dilation=first_dilation if i == 0 else dilation,
            residual=residual,
            anti_alias=anti_alias,
            epsilon=BN_EPSILON,
            momentum=BN_MOMENTUM,
            name=f"layer{level}_{i}",
        )(x)
    return x


def _conv_level(x, level, channels, count, stride, dilation, anti_alias):
    """DRN-D's plain levels: ``count`` x [conv3x3-BN-ReLU], named like the reference's
    ``nn.Sequential`` children (``layer{level}_{3i}``, ``_{3i+1}``, ``_{3i+2}``)."""
    for i in range(count):
        name = f"layer{level}_{3 * i}"
        strided = stride > 1 and i == 0
        if strided and anti_alias is None:
            x = _strided_conv(x, channels, 3, name)
        else:
            x = _conv(channels, 3, name, dilation=dilation)(x)
        x = _bn(f"layer{level}_{3 * i + 1}")(x)
        x = layers.ReLU(name=f"layer{level}_{3 * i + 2}")(x)
        if strided and anti_alias is not None:
            x = make_anti_alias(anti_alias, channels, name=f"layer{level}_blur")(x)
    return x


def _drn_cd_body(x, variant, anti_alias):
    stem = {"C": ("conv1", "bn1", "relu"), "D": ("layer0_0", "layer0_1", "layer0_2")}
    names = stem[variant.arch]
    x = _conv(16, 7, names[0])(x)
    x = _bn(names[1])(x)
    x = layers.ReLU(name=names[2])(x)
    for (level, channels, stride, dilation, unit), count in zip(CD_LEVELS, variant.depths):
        if count == 0:
            continue
        if unit == "block":
            x = _block_level(x, level, variant.block, channels, count, stride, dilation,
                             dilation, anti_alias)
        elif variant.arch == "C":
            x = _block_level(x, level, "basic", channels, count, stride, dilation, dilation,
                             anti_alias, residual=unit == "early")
        else:
            x = _conv_level(x, level, channels, count, stride, dilation, anti_alias)
        x = layers.Identity(name=f"level{level}")(x)
    return x


def _drn_a_body(x, variant, anti_alias):
    x = _strided_conv(x, 64, 7, "conv1")
    x = _bn("bn1")(x)
    x = layers.ReLU(name="relu")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is >= 0 after ReLU.
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    if anti_alias is None:
        x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    else:
        x = layers.MaxPooling2D(3, strides=1, name="maxpool")(x)
        x = make_anti_alias(anti_alias, 64, name="maxpool_blur")(x)
    for level, planes, stride, dilation in A_LEVELS:
        x = _block_level(x, level, variant.block, planes, variant.depths[level - 1], stride,
                         dilation, 1, anti_alias)
        x = layers.Identity(name=f"level{level}")(x)
    return x


def _validate(variant, include_top, weights, input_shape, pooling, classes, anti_alias):
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False; received {include_top!r}.")
    validate_weights_argument(weights)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; received pooling={pooling!r}.")
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes must be a positive int; received classes={classes!r}.")
    if anti_alias not in ANTI_ALIAS:
        raise ValueError(
            f"anti_alias must be one of {ANTI_ALIAS}; received anti_alias={anti_alias!r}."
        )
    if input_shape is not None:
        shape = tuple(input_shape)
        if len(shape) != 3 or not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
            raise ValueError(
                "input_shape must be (height, width, channels) with positive ints or None for "
                f"height and width; received input_shape={input_shape!r}."
            )
        if shape[2] is None:
            raise ValueError(f"The channel count must be known; received input_shape={shape}.")
        if weights is not None and shape[2] != 3:
            raise ValueError(
                f"Pretrained {variant.name} weights expect 3 input channels (RGB); received "
                f"input_shape={shape}. Use weights=None for other channel counts."
            )


def _classifier_activation(value):
    if value is None:
        return "linear"
    try:
        keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "classifier_activation must be None, a callable or the name of a Keras activation "
            f"(such as 'softmax', 'sigmoid', 'linear'); received {value!r}."
        ) from error
    return value


def build_drn(
    variant,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    anti_alias=None,
    name=None,
):
    """Builds the functional model of a DRN variant (a name from ``list_models()``)."""
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown DRN variant {variant!r}; valid names are {sorted(VARIANTS)}."
        )
    spec = VARIANTS[variant]
    _validate(spec, include_top, weights, input_shape, pooling, classes, anti_alias)
    activation = _classifier_activation(classifier_activation) if include_top else None
    if input_tensor is None:
        inputs = keras.Input(shape=tuple(input_shape or (None, None, 3)), name="image")
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, name="image")
    body = _drn_a_body if spec.arch == "A" else _drn_cd_body
    x = body(inputs, spec, anti_alias)
    if include_top:
        # Global pooling equals the reference's AvgPool2d(28) at 224x224 and works at any size.
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
        # The reference's fc is a 1x1 conv (C, D) or a Linear (A): a Dense either way. Glorot
        # init, not the reference's normal(0, sqrt(2 / classes)): that one suits 1000 classes
        # but gives logits of std ~20 with a handful of classes, which stalls fine-tuning.
        x = layers.Dense(classes, name="fc")(x)
        x = layers.Activation(activation, dtype="float32", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="maxpool")(x)
    source = inputs
    if input_tensor is not None:
        sources = keras.utils.get_source_inputs(inputs)
        source = sources[0] if len(sources) == 1 else sources
    model = keras.Model(source, x, name=name or variant)
    if weights is not None:
        load_weights(model, weights, variant)
    return model


def feature_model(model, levels=None):
    """A model with the same input that outputs the per-level feature maps of a DRN.

    Args:
        model: a model built by keras_drn (``DRN_C_26(...)`` and friends, any ``include_top``).
        levels: level numbers to output (DRN-C/D: 1-8, DRN-A: 1-4); default all levels.

    Returns:
        A ``keras.Model`` whose output is a dict ``{"level1": ..., "level2": ...}``; level
        ``n`` has output stride ``min(2 ** (n - 1), 8)`` in DRN-C/D and ``(4, 8, 8, 8)[n - 1]``
        in DRN-A. These feed segmentation heads and class activation maps.
    """
    available = [
        int(layer.name[len("level"):])
        for layer in model.layers
        if layer.name.startswith("level") and layer.name[len("level"):].isdigit()
    ]
    if not available:
        raise ValueError(
            f"Model {model.name!r} has no 'levelN' layers; build it with keras_drn (for example "
            "keras_drn.DRN_D_22(include_top=False))."
        )
    wanted = sorted(available) if levels is None else list(levels)
    missing = [n for n in wanted if n not in available]
    if missing:
        raise ValueError(
            f"Levels {missing} are not in model {model.name!r}; available levels: "
            f"{sorted(available)}."
        )
    outputs = {f"level{n}": model.get_layer(f"level{n}").output for n in wanted}
    return keras.Model(model.input, outputs, name=f"{model.name}_features")
