"""The DRN model family (DRN-A, DRN-C, DRN-D): one builder over the variant table
(``keras_drn.models.variants``).

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017. The architecture follows the
official code (github fyu/drn, ``drn.py``) layer for layer, and layer names follow its
``state_dict`` keys (``layer3.0.conv1`` -> layer ``layer3_0``, sublayer ``conv1``), so its
checkpoints map onto these models by name.
"""

import keras
from keras import layers

from keras_drn.layers.dilated_conv import reference_conv, symmetric_padding
from keras_drn.layers.dilated_residual import (
    ANTI_ALIAS,
    BLOCKS,
    DilatedResidualBlock,
    make_anti_alias,
)
from keras_drn.models.variants import CHILDREN, LEVELS, STEM, VARIANTS
from keras_drn.weights.layouts import CheckpointNames
from keras_drn.weights.loading import load_weights, validate_weights_argument

BN_EPSILON = 1e-5  # PyTorch's default; Keras's 1e-3 would change converted outputs
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1
POOLINGS = (None, "avg", "max")


def feature_info(variant):
    """Per level of ``variant``: ``{"level": n, "channels": c, "reduction": r}`` (output
    channels and output stride of the layer ``levelN``), from the variant table."""
    spec = VARIANTS[variant]
    info = []
    for level, count in zip(LEVELS[spec.arch], spec.depths):
        if count:
            expansion = BLOCKS[spec.block] if level.unit == "block" else 1
            info.append({"level": level.number, "channels": level.channels * expansion,
                         "reduction": level.reduction})
    return info


def checkpoint_names(variant):
    """The ``CheckpointNames`` of ``variant`` (what ``keras_drn.weights`` needs to map the
    reference's, segment.py's and pytorchcv's keys), from the variant table."""
    spec = VARIANTS[variant]
    levels = list(zip(LEVELS[spec.arch], spec.depths))
    absent = {f"layer{level.number}" for level, count in levels if not count}
    children = tuple(c for c in CHILDREN[spec.arch] if c not in absent)
    stem = tuple(STEM[spec.arch][:2])
    if spec.arch == "A":
        return CheckpointNames(variant, children, stem)
    units, stage, position = [], 0, 0
    for level, count in levels:
        if level.pytorchcv_stage != stage:
            stage, position = level.pytorchcv_stage, 0
        for i in range(count):
            position += 1
            prefix = f"features.stage{stage}.unit{position}"
            if spec.arch == "D" and level.unit != "block":
                names = (f"layer{level.number}.{3 * i}", f"layer{level.number}.{3 * i + 1}")
                units.append((prefix, "plain", names))
            else:
                units.append((prefix, "block", (f"layer{level.number}.{i}",)))
    return CheckpointNames(variant, children, stem, tuple(units))


def _bn(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _strided_conv(x, filters, kernel_size, name):
    """Stride-2 conv with PyTorch's symmetric padding (TF "same" pads (0, 1) at even sizes)."""
    x = layers.ZeroPadding2D(symmetric_padding(kernel_size), name=f"{name}_pad")(x)
    return reference_conv(filters, kernel_size, strides=2, name=name)(x)


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
            x = reference_conv(channels, 3, dilation=dilation, name=name)(x)
        x = _bn(f"layer{level}_{3 * i + 1}")(x)
        x = layers.ReLU(name=f"layer{level}_{3 * i + 2}")(x)
        if strided and anti_alias is not None:
            x = make_anti_alias(anti_alias, channels, name=f"layer{level}_blur")(x)
    return x


def _drn_cd_body(x, variant, anti_alias):
    conv, bn, relu = (name.replace(".", "_") for name in STEM[variant.arch])
    x = reference_conv(16, 7, name=conv)(x)
    x = _bn(bn)(x)
    x = layers.ReLU(name=relu)(x)
    for level, count in zip(LEVELS[variant.arch], variant.depths):
        if count == 0:
            continue
        n, channels, stride, dilation = level.number, level.channels, level.stride, level.dilation
        if level.unit == "block":
            x = _block_level(x, n, variant.block, channels, count, stride, dilation,
                             level.first_dilation, anti_alias)
        elif variant.arch == "C":
            x = _block_level(x, n, "basic", channels, count, stride, dilation,
                             level.first_dilation, anti_alias, residual=level.unit == "early")
        else:
            x = _conv_level(x, n, channels, count, stride, dilation, anti_alias)
        x = layers.Identity(name=f"level{n}")(x)
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
    for level, count in zip(LEVELS["A"], variant.depths):
        x = _block_level(x, level.number, variant.block, level.channels, count, level.stride,
                         level.dilation, level.first_dilation, anti_alias)
        x = layers.Identity(name=f"level{level.number}")(x)
    return x


def _validate(variant, include_top, weights, input_shape, pooling, classes, anti_alias):
    if not isinstance(include_top, bool):
        raise ValueError(f"include_top must be True or False; received {include_top!r}.")
    validate_weights_argument(weights, variant.name)
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
        load_weights(model, weights, checkpoint_names(variant))
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
