"""DRNSegmenter: a DRN backbone with a dense-prediction head, logits at the input resolution.

The backbone is a DRN name or a built model that carries ``pyramid_outputs`` and
``feature_info`` (``keras_drn.models.drn.DRNModel``, as keras-hub's
``FeaturePyramidBackbone``); the head and the optional context come from the registries in
``keras_drn.models.heads``: ``"drn"``, the reference's DRNSeg (Yu et al. 2017, ``segment.py``),
``"gcn"``, GCN + Boundary Refinement fused coarse to fine (Peng et al. 2017, section 3.3), and
the context ``"parsenet"`` (Liu et al. 2015) on the last level.
"""

import warnings

import keras
from keras import layers

from keras_drn.models.drn import build_drn, checkpoint_names
from keras_drn.models.heads import UPSAMPLINGS, get_context, get_head
from keras_drn.models.preprocessing import (
    normalization_layer,
    resolve_include_preprocessing,
    resolve_statistics,
)
from keras_drn.models.variants import VARIANTS
from keras_drn.weights.loading import load_weights

# What a backbone built by name takes from DRNSegmenter; a built backbone brings its own.
_BUILD_DEFAULTS = {"anti_alias": None, "input_shape": (None, None, 3), "preprocessing": None,
                   "dilation_strategy": "auto", "backbone_weights": None, "weights": None,
                   "include_preprocessing": None, "mean": None, "std": None}


def _check(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; received {name}={value!r}.")


def _is_default(name, value):
    default = _BUILD_DEFAULTS[name]
    if default is None:
        return value is None
    return (tuple(value) if name == "input_shape" else value) == default


def _built_backbone(backbone, arguments):
    """``backbone`` (a ``keras.Model``) when it carries ``pyramid_outputs`` and
    ``feature_info`` and no build argument differs from its default; else a ``ValueError``."""
    if getattr(backbone, "pyramid_outputs", None) is None or getattr(
            backbone, "feature_info", None) is None:
        raise ValueError(
            f"A built backbone must carry pyramid_outputs (a dict {{'levelN': feature map}}) and "
            f"feature_info (per level: level, channels, reduction), as the models of keras_drn "
            f"do (for example keras_drn.DRN_D_22(include_top=False)); received "
            f"{type(backbone).__name__} {backbone.name!r} without them."
        )
    given = {name: value for name, value in arguments.items() if not _is_default(name, value)}
    if given:
        raise ValueError(
            f"{sorted(given)} apply to a backbone built by name; a built backbone brings its "
            f"own (build it with them, load its weights first, or load the segmenter's weights "
            f"afterwards with load_weights); received {given} with backbone {backbone.name!r}."
        )
    return backbone


def _deprecated_preprocessing(preprocessing, include_preprocessing, mean, std):
    """``(include_preprocessing, mean, std)`` for the deprecated ``preprocessing=`` (``None``,
    ``"imagenet"`` or ``(mean, std)``, keras_drn 0.1): a ``DeprecationWarning`` naming the
    replacement, a ValueError when the new arguments are given too."""
    if preprocessing is None:
        return include_preprocessing, mean, std
    if include_preprocessing is not None or mean is not None or std is not None:
        raise ValueError(
            f"preprocessing={preprocessing!r} is the deprecated spelling of "
            "include_preprocessing=True with mean=/std=; received it together with "
            f"include_preprocessing={include_preprocessing!r}, mean={mean!r}, std={std!r}. "
            "Give only the new arguments.")
    statistics = resolve_statistics(preprocessing)
    replacement = ("include_preprocessing=True" if preprocessing == "imagenet" else
                   f"include_preprocessing=True, mean={statistics[0]}, std={statistics[1]}")
    warnings.warn(f"DRNSegmenter(preprocessing={preprocessing!r}) is deprecated; use "
                  f"{replacement}.", DeprecationWarning, stacklevel=3)
    return True, *statistics


def DRNSegmenter(
    backbone="drn_d_22",
    num_classes=19,
    head="drn",
    context=None,
    anti_alias=None,
    backbone_weights=None,
    weights=None,
    upsampling="deconv",
    input_shape=(None, None, 3),
    gcn_kernel_size=15,
    preprocessing=None,
    dilation_strategy="auto",
    name=None,
    include_preprocessing=None,
    mean=None,
    std=None,
):
    """Builds a semantic segmentation model on a DRN backbone.

    Args:
        backbone: a DRN name from ``keras_drn.list_models()`` (the reference uses drn_d_22,
            drn_d_38, drn_d_105, drn_c_26, drn_c_42, drn_a_50), or a built backbone that
            carries ``pyramid_outputs`` and ``feature_info`` (``keras_drn.DRN_D_22(
            include_top=False)``, ``keras.saving.load_model`` of one): the segmenter is then
            built on its graph and layers (so they share weights), and ``anti_alias``,
            ``backbone_weights``, ``weights``, ``input_shape``, ``include_preprocessing``,
            ``mean``, ``std``, ``preprocessing`` and ``dilation_strategy`` must keep their
            defaults (the backbone brings its own).
        num_classes: number of classes (Cityscapes: 19).
        head: a name of ``keras_drn.models.heads.HEADS``: ``"drn"`` (reference DRNSeg) or
            ``"gcn"`` (GCN + Boundary Refinement on levels 2, 3, 4, 8 of DRN-C/D, 1, 2, 4 of
            DRN-A, fused coarse to fine).
        context: ``None`` or a name of ``keras_drn.models.heads.CONTEXTS``: ``"parsenet"``
            (global context on the last level, see ``keras_drn.layers.GlobalContext``).
        anti_alias: ``None``, ``"blur"`` or ``"adaptive"``: low-pass filters before the
            backbone's downsamplings.
        backbone_weights: ``None``, ``"imagenet"`` or a weights file for the backbone.
        weights: ``None`` or a weights file of the whole segmenter (``.weights.h5``,
            ``.keras``, or a reference ``segment.py`` checkpoint).
        upsampling: ``"deconv"`` (head "drn": the reference's fixed bilinear transposed conv;
            head "gcn": learned x2 transposed convs) or ``"bilinear"`` (resizing).
        input_shape: ``(height, width, 3)``, default any size.
        gcn_kernel_size: GCN kernel size (paper default 15).
        preprocessing: deprecated (keras_drn 0.1): ``"imagenet"`` is
            ``include_preprocessing=True``, ``(mean, std)`` is ``include_preprocessing=True,
            mean=mean, std=std``; not together with those.
        dilation_strategy: ``"auto"``, ``"direct"`` or ``"phase"``: how the backbone's dilated
            levels run (see ``keras_drn.DRN_D_22``); the same weights and outputs either way.
        name: model name (default ``"<backbone>_<head>_segmenter"``, with a built backbone
            its name).
        include_preprocessing: ``None`` (default: ``True`` when ``backbone_weights`` names
            pretrained weights, ``"imagenet"`` or ``"imagenet:<source>"``, or ``mean``/``std``
            are given, else ``False``), ``True`` or ``False``. ``True``: the model takes raw
            0-255 RGB and its first layer, ``preprocessing`` (``keras.layers.Normalization``,
            saved in the ``.keras`` file), computes ``(x / 255 - mean) / std``, with ``mean``/
            ``std`` when given, else the backbone weights' from the weights table
            (``keras_drn.weights.sources``), else ImageNet's. ``False``: the model takes
            normalised images (as the reference's), ``keras_drn.preprocess_input(x,
            weights=...)``; a reference Cityscapes checkpoint (``weights=`` file) expects
            ``weights="cityscapes"``'s statistics.
        mean, std: per-channel statistics of 0-1 RGB (three numbers each) of the data the
            model is trained on, for its ``preprocessing`` layer
            (``keras_drn.models.preprocessing.preprocessing_of(model)`` reads them back).

    Returns:
        A functional ``keras.Model``: images ``(batch, H, W, 3)`` (raw 0-255 RGB with the
        ``preprocessing`` layer, else normalised) -> class logits
        ``(batch, H, W, num_classes)`` (float32 under mixed precision), for any H and W.
        Apply a softmax (or log-softmax, as the reference does) for probabilities.
    """
    build_head = get_head(head)
    build_context = get_context(context)
    _check("upsampling", upsampling, UPSAMPLINGS)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; received {num_classes!r}.")
    if isinstance(backbone, keras.Model):
        key = None
        base = _built_backbone(backbone, {
            "anti_alias": anti_alias, "input_shape": input_shape, "preprocessing": preprocessing,
            "dilation_strategy": dilation_strategy, "backbone_weights": backbone_weights,
            "weights": weights, "include_preprocessing": include_preprocessing, "mean": mean,
            "std": std,
        })
    else:
        key = str(backbone).lower().replace("-", "_")
        if key not in VARIANTS:
            raise ValueError(
                f"Unknown backbone {backbone!r}; valid names are {sorted(VARIANTS)}, or pass a "
                "built keras_drn backbone (keras_drn.DRN_D_22(include_top=False))."
            )
        include_preprocessing, mean, std = _deprecated_preprocessing(
            preprocessing, include_preprocessing, mean, std)
        statistics = resolve_include_preprocessing(include_preprocessing, backbone_weights, key,
                                                   mean, std)
        input_tensor = None
        if statistics is not None:
            image = keras.Input(tuple(input_shape), name="image")
            input_tensor = normalization_layer(*statistics)(image)
        base = build_drn(
            key, include_top=False, weights=backbone_weights, input_shape=input_shape,
            input_tensor=input_tensor, anti_alias=anti_alias,
            dilation_strategy=dilation_strategy, include_preprocessing=False,
        )
    pyramid = dict(base.pyramid_outputs)
    if build_context is not None:
        last = f"level{base.feature_info[-1]['level']}"
        pyramid[last] = build_context(pyramid[last])
    options = {"kernel_size": gcn_kernel_size} if head == "gcn" else {}
    x = build_head(pyramid, base.feature_info, base.input, num_classes, upsampling, **options)
    x = layers.Activation("linear", dtype="float32", name="logits")(x)
    model = keras.Model(base.input, x, name=name or f"{key or base.name}_{head}_segmenter")
    if weights is not None:
        load_weights(model, weights, checkpoint_names(key))
    return model
