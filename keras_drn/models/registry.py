"""Public constructors (``DRN_C_26`` ...), ``list_models`` and ``get_model``, made from the
variant table in ``keras_drn.models.drn``."""

from keras_drn.models.drn import VARIANTS, build_drn

_DOC = """Builds {title} (Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017).

{arch_doc}

Args:
    include_top: end with global average pooling, the ``fc`` classifier and
        ``classifier_activation`` (the reference's AvgPool2d(28) at 224x224, at any size).
    weights: ``None`` (random init as in the reference), ``"imagenet"`` (the official
        checkpoint), or the path to a ``.weights.h5`` or ``.keras`` file.
    input_tensor: optional Keras tensor to use as the model input.
    input_shape: ``(height, width, channels)``; default ``(None, None, 3)``: any size.
    pooling: with ``include_top=False``: ``None`` (the output-stride-8 feature map),
        ``"avg"`` or ``"max"`` (global pooling to a vector).
    classes: number of classes of the ``fc`` layer (``include_top=True``).
    classifier_activation: activation of the output (``"softmax"``, ``None`` for logits, or
        any Keras activation); computed in float32 under mixed precision.
    anti_alias: ``None``, ``"blur"`` (``BlurPool``, Zhang 2019) or ``"adaptive"``
        (``AdaptiveBlurPool``, Zou et al. 2020) before every downsampling except the first
        conv.
    name: model name (default ``"{name}"``).

Input: images ``(batch, height, width, 3)``. Output: ``(batch, classes)`` with the top,
else ``(batch, ceil(height / 8), ceil(width / 8), {channels})`` (or ``(batch, {channels})``
with pooling). Each level's output is the layer ``levelN``; ``keras_drn.feature_model(model)``
returns all of them.

Reference: {params:,} trainable parameters with 1000 classes.
"""

_ARCH_DOC = {
    "A": "DRN-A: a ResNet whose last two stages use stride 1 with dilation 2 and 4 "
    "(output stride 8).",
    "C": "DRN-C: 7x7 stride-1 stem, residual levels 1-2, dilated levels 5-6 and degridding "
    "levels 7-8 of basic blocks without residual connections (output stride 8).",
    "D": "DRN-D: like DRN-C with plain conv-BN-ReLU layers in levels 1-2 and 7-8 (output "
    "stride 8).",
}

# Trainable parameters with 1000 classes, as the reference counts them (SPECS section 1);
# DRN-C-58 without the unused layer7.0 projection of the reference.
PARAMETERS = {
    "drn_a_18": 11_689_512,
    "drn_a_34": 21_797_672,
    "drn_a_50": 25_557_032,
    "drn_c_26": 21_126_584,
    "drn_c_42": 31_234_744,
    "drn_c_58": 40_542_008,
    "drn_d_22": 16_393_752,
    "drn_d_24": 21_114_392,
    "drn_d_38": 26_501_912,
    "drn_d_40": 31_222_552,
    "drn_d_54": 35_809_176,
    "drn_d_56": 40_529_816,
    "drn_d_105": 54_801_304,
    "drn_d_107": 59_521_944,
}


def _constructor(variant):
    spec = VARIANTS[variant]

    def constructor(
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
        return build_drn(
            variant,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            anti_alias=anti_alias,
            name=name,
        )

    constructor.__name__ = constructor.__qualname__ = variant.upper()
    channels = 2048 if spec.arch == "A" and spec.block == "bottleneck" else 512
    constructor.__doc__ = _DOC.format(
        title=variant.upper().replace("_", "-"),
        arch_doc=_ARCH_DOC[spec.arch],
        name=variant,
        channels=channels,
        params=PARAMETERS[variant],
    )
    return constructor


DRN_A_18 = _constructor("drn_a_18")
DRN_A_34 = _constructor("drn_a_34")
DRN_A_50 = _constructor("drn_a_50")
DRN_C_26 = _constructor("drn_c_26")
DRN_C_42 = _constructor("drn_c_42")
DRN_C_58 = _constructor("drn_c_58")
DRN_D_22 = _constructor("drn_d_22")
DRN_D_24 = _constructor("drn_d_24")
DRN_D_38 = _constructor("drn_d_38")
DRN_D_40 = _constructor("drn_d_40")
DRN_D_54 = _constructor("drn_d_54")
DRN_D_56 = _constructor("drn_d_56")
DRN_D_105 = _constructor("drn_d_105")
DRN_D_107 = _constructor("drn_d_107")


def list_models():
    """The names ``get_model`` accepts: ``["drn_a_18", ..., "drn_d_107"]``."""
    return sorted(VARIANTS, key=lambda n: (n[:5], int(n.split("_")[-1])))


def get_model(name, **kwargs):
    """Builds a model by name (``"drn_c_26"``, ``"DRN-C-26"`` and ``"DRN_C_26"`` all work);
    ``kwargs`` go to the constructor (``include_top``, ``weights``, ``classes``, ...)."""
    key = str(name).lower().replace("-", "_")
    if key not in VARIANTS:
        raise ValueError(f"Unknown model name {name!r}; valid names are {list_models()}.")
    return build_drn(key, **kwargs)
