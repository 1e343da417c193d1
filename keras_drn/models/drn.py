"""The DRN model family (DRN-A, DRN-C, DRN-D): one builder over the variant table
(``keras_drn.models.variants``).

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017. The architecture follows the
official code (github fyu/drn, ``drn.py``) layer for layer, and layer names follow its
``state_dict`` keys (``layer3.0.conv1`` -> layer ``layer3_0``, sublayer ``conv1``), so its
checkpoints map onto these models by name.

``dilation_strategy`` chooses how the dilated levels execute: ``"direct"`` (dilated
convolutions) or ``"phase"`` (undilated convolutions on the phase sub-maps stacked into the
batch, ``keras_drn.layers.phase``); both have the same layers, names, weights and outputs.
Only the rearrangement layers (``layerN_i_to_phase``, ``levelN_to_space``, no weights) and the
``dilation_rate`` of the convolutions inside a phase run differ. A level whose map is not a
multiple of the factor falls back to direct execution for that level (a smaller factor where
one divides both): padding to a multiple would need masks before every conv and in every
batch-statistics BatchNormalization to stay exact. With a fixed ``input_shape`` that is
decided when the model is built (no rearrangement layers there); with ``None`` height or width
each level decides when traced, from the map size it sees (``SpaceToPhase(fallback=True)``,
``keras_drn.layers.phase``), so a model built for any size runs at any size; a size unknown
even then (a TensorFlow SavedModel traced with ``None`` dimensions) runs directly.
"""

import dataclasses
import math
from collections.abc import Callable

import keras
from keras import layers

from keras_drn.layers.dilated_conv import reference_conv, symmetric_padding
from keras_drn.layers.dilated_residual import (
    ANTI_ALIAS,
    BLOCKS,
    DilatedResidualBlock,
    make_anti_alias,
)
from keras_drn.layers.fused_batch_norm import FusedBatchNormalization
from keras_drn.layers.phase import PhaseToSpace, SpaceToPhase
from keras_drn.layers.platform import platform
from keras_drn.models.preprocessing import normalization_layer, resolve_include_preprocessing
from keras_drn.models.variants import CHILDREN, LEVELS, STEM, VARIANTS
from keras_drn.weights.layouts import CheckpointNames
from keras_drn.weights.loading import load_weights, validate_weights_argument

BN_EPSILON = 1e-5  # PyTorch's default; Keras's 1e-3 would change converted outputs
BN_MOMENTUM = 0.9  # PyTorch momentum 0.1
POOLINGS = (None, "avg", "max")
DILATION_STRATEGIES = ("auto", "direct", "phase")
# What dilation_strategy="auto" runs, per (Keras backend, device platform); anything not listed
# runs "direct". Phase execution removes XLA's dilated-convolution penalty on GPU (SPECS.md
# section 5), but nothing here has been measured on a GPU yet: every entry stays "direct" until
# tools/gpu_check.sh has run on one. If JAX phase beats JAX direct there, set ("jax", "gpu") to
# "phase" (and likewise any other row that the measurement shows faster).
AUTO_DILATION_STRATEGY = {
    ("jax", "gpu"): "direct",  # GPU measurement pending (issue 17, tools/gpu_check.sh)
    ("jax", "cpu"): "direct",
    ("tensorflow", "gpu"): "direct",
    ("tensorflow", "cpu"): "direct",
    ("torch", "gpu"): "direct",
    ("torch", "cpu"): "direct",
}


def resolve_dilation_strategy(dilation_strategy):
    """``"direct"`` or ``"phase"``: ``dilation_strategy`` itself, or for ``"auto"`` the entry
    of ``AUTO_DILATION_STRATEGY`` for the current backend and device."""
    if dilation_strategy not in DILATION_STRATEGIES:
        raise ValueError(
            f"dilation_strategy must be one of {DILATION_STRATEGIES}; received "
            f"dilation_strategy={dilation_strategy!r}."
        )
    if dilation_strategy != "auto":
        return dilation_strategy
    backend = keras.backend.backend()
    return AUTO_DILATION_STRATEGY.get((backend, platform(backend)), "direct")


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
    return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _strided_conv(x, filters, kernel_size, name):
    """Stride-2 conv with PyTorch's symmetric padding (TF "same" pads (0, 1) at even sizes)."""
    x = layers.ZeroPadding2D(symmetric_padding(kernel_size), name=f"{name}_pad")(x)
    return reference_conv(filters, kernel_size, strides=2, name=name)(x)


@dataclasses.dataclass(frozen=True)
class _Unit:
    """One block (or DRN-D conv-BN-ReLU) of a level: ``build(x, dilation, phase_splits)`` adds
    its layers, with ``dilation`` already divided by the phase factor it runs in and
    ``phase_splits`` the names of the ``SpaceToPhase`` layers in force (``DilatedConv2D``)."""

    name: str
    stride: int
    dilation: int
    build: Callable


def _block_unit(variant_block, planes, stride, residual, anti_alias, name):
    def build(x, dilation, phase_splits):
        return DilatedResidualBlock(
            planes,
            block=variant_block,
            strides=stride,
            dilation=dilation,
            residual=residual,
            anti_alias=anti_alias,
            epsilon=BN_EPSILON,
            momentum=BN_MOMENTUM,
            phase_splits=phase_splits,
            name=name,
        )(x)

    return build


def _conv_unit(level, index, channels, stride, anti_alias):
    """DRN-D's plain levels: conv3x3-BN-ReLU, named like the reference's ``nn.Sequential``
    children (``layer{level}_{3i}``, ``_{3i+1}``, ``_{3i+2}``)."""

    def build(x, dilation, phase_splits):
        name = f"layer{level}_{3 * index}"
        strided = stride > 1
        if strided and anti_alias is None:
            x = _strided_conv(x, channels, 3, name)
        else:
            x = reference_conv(channels, 3, dilation=dilation, name=name,
                               phase_splits=phase_splits)(x)
        x = _bn(f"layer{level}_{3 * index + 1}")(x)
        x = layers.ReLU(name=f"layer{level}_{3 * index + 2}")(x)
        if strided and anti_alias is not None:
            x = make_anti_alias(anti_alias, channels, name=f"layer{level}_blur")(x)
        return x

    return build


def _level_units(variant, level, count, anti_alias):
    units = []
    for i in range(count):
        stride = level.stride if i == 0 else 1
        dilation = level.first_dilation if i == 0 else level.dilation
        if variant.arch == "D" and level.unit != "block":
            build = _conv_unit(level.number, i, level.channels, stride, anti_alias)
            units.append(_Unit(f"layer{level.number}_{3 * i}", stride, dilation, build))
            continue
        block = variant.block if level.unit == "block" else "basic"
        # DRN-C's levels 1-2 are residual, its degridding levels 7-8 are not.
        build = _block_unit(block, level.channels, stride, level.unit != "degrid", anti_alias,
                            f"layer{level.number}_{i}")
        units.append(_Unit(f"layer{level.number}_{i}", stride, dilation, build))
    return units


class _PhasePlan:
    """Places the ``SpaceToPhase``/``PhaseToSpace`` rearrangements while a body is built.

    Each stride-1 dilated unit runs in the largest phase factor that divides its dilation and
    the height and width of its (full-resolution) input; unknown sizes count as divisible, and
    the ``SpaceToPhase`` layer (``fallback=True``) then splits, when traced, by what divides the
    size it sees; the layers of the run follow it by name (``keras_drn.layers.phase``). Factors
    nest: DRN-C/D's dilation-4 level 6 runs in a further factor-2 split of the factor-2 form of
    its dilation-2 neighbours (one rearrangement at each end instead of three). A level is
    rearranged back before its ``levelN`` layer unless the next unit runs in a multiple of the
    same factor.
    """

    def __init__(self, enabled):
        self.enabled = enabled
        self.splits = []  # (factor, name) of the SpaceToPhase layers in force, in order

    @property
    def factor(self):
        return math.prod(factor for factor, _ in self.splits)

    @property
    def names(self):
        """The names of the ``SpaceToPhase`` layers in force."""
        return tuple(name for _, name in self.splits)

    def factor_for(self, x, unit):
        """The phase factor ``unit`` runs in when its input is ``x`` (in the current form)."""
        if not self.enabled or unit is None or unit.stride != 1 or unit.dilation == 1:
            return 1
        sizes = [None if s is None else s * self.factor for s in x.shape[1:3]]
        return max(f for f in range(1, unit.dilation + 1)
                   if unit.dilation % f == 0 and all(s is None or s % f == 0 for s in sizes))

    def move(self, x, target, name):
        """Rearranges ``x`` into phase factor ``target``: undoes splits (latest first) until
        the factor divides ``target``, then splits once more if it is smaller."""
        undone = 0
        while target % self.factor:
            suffix = f"_{undone}" if undone else ""
            factor, split = self.splits.pop()
            x = PhaseToSpace(factor, split=split, name=f"{name}_to_space{suffix}")(x)
            undone += 1
        if target > self.factor:
            split = target // self.factor
            x = SpaceToPhase(split, fallback=True, name=f"{name}_to_phase")(x)
            self.splits.append((split, f"{name}_to_phase"))
        return x


def _run_levels(x, levels, dilation_strategy):
    """Builds the levels (``[(number, units)]``) of a body and its ``levelN`` layers."""
    plan = _PhasePlan(dilation_strategy == "phase")
    for index, (number, units) in enumerate(levels):
        for unit in units:
            factor = plan.factor_for(x, unit)
            x = plan.move(x, factor, unit.name)
            x = unit.build(x, unit.dilation // factor, plan.names)
        following = levels[index + 1][1][0] if index + 1 < len(levels) else None
        x = plan.move(x, math.gcd(plan.factor, plan.factor_for(x, following)), f"level{number}")
        x = layers.Identity(name=f"level{number}")(x)
    return x


def _drn_cd_body(x, variant, anti_alias, dilation_strategy):
    conv, bn, relu = (name.replace(".", "_") for name in STEM[variant.arch])
    x = reference_conv(16, 7, name=conv)(x)
    x = _bn(bn)(x)
    x = layers.ReLU(name=relu)(x)
    levels = [(level.number, _level_units(variant, level, count, anti_alias))
              for level, count in zip(LEVELS[variant.arch], variant.depths) if count]
    return _run_levels(x, levels, dilation_strategy)


def _drn_a_body(x, variant, anti_alias, dilation_strategy):
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
    levels = [(level.number, _level_units(variant, level, count, anti_alias))
              for level, count in zip(LEVELS["A"], variant.depths)]
    return _run_levels(x, levels, dilation_strategy)


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
    dilation_strategy="auto",
    name=None,
    include_preprocessing=None,
):
    """Builds the functional model of a DRN variant (a name from ``list_models()``), a
    ``DRNModel`` (which carries ``pyramid_outputs`` and ``feature_info``);
    ``dilation_strategy``: ``"auto"``, ``"direct"`` or ``"phase"`` (module docstring). The
    arguments are those of ``keras_drn.DRN_C_26`` and the other variants, which document
    them (``include_preprocessing``: ``keras_drn.models.preprocessing``).

    Input: images ``(batch, height, width, 3)``, raw 0-255 RGB when the model has its
    ``preprocessing`` layer, else normalised. Output: ``(batch, classes)`` with the top, else
    ``(batch, ceil(height / 8), ceil(width / 8), channels)`` (or ``(batch, channels)`` with
    pooling).
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown DRN variant {variant!r}; valid names are {sorted(VARIANTS)}."
        )
    spec = VARIANTS[variant]
    _validate(spec, include_top, weights, input_shape, pooling, classes, anti_alias)
    statistics = resolve_include_preprocessing(include_preprocessing, weights, variant)
    activation = _classifier_activation(classifier_activation) if include_top else None
    strategy = resolve_dilation_strategy(dilation_strategy)
    if input_tensor is None:
        inputs = keras.Input(shape=tuple(input_shape or (None, None, 3)), name="image")
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = keras.Input(tensor=input_tensor, name="image")
    x = inputs if statistics is None else normalization_layer(*statistics)(inputs)
    body = _drn_a_body if spec.arch == "A" else _drn_cd_body
    x = body(x, spec, anti_alias, strategy)
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
    model = DRNModel(source, x, name=name or variant)
    if weights is not None:
        load_weights(model, weights, checkpoint_names(variant))
    return model


def _level_layers(model):
    """``{n: layer}``: the layers ``levelN`` of ``model``, looked up by the names build_drn gives
    them (the level numbers of the variant table)."""
    by_name = {layer.name: layer for layer in model.layers}
    numbers = sorted({level.number for table in LEVELS.values() for level in table})
    return {n: by_name[f"level{n}"] for n in numbers if f"level{n}" in by_name}


def _graph_pyramid(model):
    """``{"levelN": tensor}`` from ``model``'s graph (a DRN, or a model whose graph holds one,
    such as a segmenter): the output of each layer ``levelN`` in the normal ``(batch, height,
    width, channels)`` layout. Under ``dilation_strategy="phase"`` the layers ``level5`` and
    ``level6`` of DRN-C/D hold phase-form maps (the rearrangement back happens after level 7);
    ``PhaseToSpace`` layers (``levelN_spatial_k``) are applied to those, each joining by the
    factor its ``SpaceToPhase`` split by when traced.
    """
    levels = _level_layers(model)
    if not levels:
        raise ValueError(
            f"Model {model.name!r} has no 'levelN' layers; build it with keras_drn (for example "
            "keras_drn.DRN_D_22(include_top=False))."
        )
    number_of = {id(layer): n for n, layer in levels.items()}
    splits, in_force = [], {}
    # A DRN's top-level graph is a chain, so model.layers (topological order) meets the
    # rearrangements and the level layers in the order they apply.
    for layer in model.layers:
        if isinstance(layer, SpaceToPhase):
            splits.append((layer.factor, layer.name if layer.fallback else None))
        elif isinstance(layer, PhaseToSpace):
            splits.pop()
        elif id(layer) in number_of:
            in_force[number_of[id(layer)]] = list(splits)
    pyramid = {}
    for n, layer in levels.items():
        x = layer.output
        for k, (factor, split) in enumerate(reversed(in_force[n])):
            x = PhaseToSpace(factor, split=split, name=f"level{n}_spatial_{k}")(x)
        pyramid[f"level{n}"] = x
    return pyramid


def _pyramid_info(model, pyramid):
    """The ``feature_info`` of the variant table whose levels and channels are ``pyramid``'s
    (variants that share those share their output strides too)."""
    levels = [(key, int(x.shape[-1])) for key, x in pyramid.items()]
    for variant in VARIANTS:
        info = feature_info(variant)
        if [(f"level{i['level']}", i["channels"]) for i in info] == levels:
            return info
    raise ValueError(
        f"The levels of model {model.name!r} ((name, channels): {levels}) are those of no DRN "
        f"variant ({sorted(VARIANTS)})."
    )


@keras.saving.register_keras_serializable(package="keras_drn")
class DRNModel(keras.Model):
    """A functional DRN model (what ``build_drn`` and ``DRN_C_26`` etc. return) that carries
    its feature pyramid, as keras-hub's ``FeaturePyramidBackbone`` does.

    Attributes, set when the model is built (also when it is loaded from a ``.keras`` file):
        pyramid_outputs: ``{"level1": tensor, ..., "levelN": tensor}``, the symbolic output of
            each level in the model's graph, in the normal ``(batch, height, width, channels)``
            layout (also under ``dilation_strategy="phase"``). Heads read these
            (``keras_drn.models.heads``); ``feature_model`` makes a model of them.
        feature_info: per level, ``{"level": n, "channels": c, "reduction": r}`` (output
            stride ``r``), from the variant table (``feature_info(variant)``).

    The arguments are those of ``keras.Model``'s functional form.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.pyramid_outputs = _graph_pyramid(self)
        self.feature_info = _pyramid_info(self, self.pyramid_outputs)


def pyramid_outputs(model):
    """``{"levelN": tensor}``: ``model.pyramid_outputs`` of a ``DRNModel``, else the same maps
    found in ``model``'s graph (a segmenter, or a DRN saved before models carried them)."""
    pyramid = getattr(model, "pyramid_outputs", None)
    return _graph_pyramid(model) if pyramid is None else pyramid


def level_outputs(model, levels):
    """``{n: tensor}``: ``pyramid_outputs(model)["levelN"]`` for each ``n`` in ``levels``."""
    pyramid = pyramid_outputs(model)
    return {n: pyramid[f"level{n}"] for n in levels}


def feature_model(model, levels=None):
    """A model with the same input that outputs the per-level feature maps of a DRN.

    Args:
        model: a model built by keras_drn (``DRN_C_26(...)`` and friends, any ``include_top``
            and ``dilation_strategy``, or a ``DRNSegmenter``).
        levels: level numbers to output (DRN-C/D: 1-8, DRN-A: 1-4); default all levels.

    Returns:
        A ``keras.Model`` whose output is a dict ``{"level1": ..., "level2": ...}``
        (``pyramid_outputs``); level ``n`` has output stride ``min(2 ** (n - 1), 8)`` in
        DRN-C/D and ``(4, 8, 8, 8)[n - 1]`` in DRN-A. These feed segmentation heads and class
        activation maps. Every map is in the normal layout, also those a phase-form model
        holds in phase form.
    """
    pyramid = pyramid_outputs(model)
    if levels is not None:
        missing = [n for n in levels if f"level{n}" not in pyramid]
        if missing:
            raise ValueError(
                f"Levels {missing} are not in model {model.name!r}; available levels: "
                f"{list(pyramid)}."
            )
        pyramid = {f"level{n}": pyramid[f"level{n}"] for n in levels}
    return keras.Model(model.input, dict(pyramid), name=f"{model.name}_features")
