"""DRNSegmenter: a DRN backbone with a dense-prediction head, logits at the input resolution.

Heads: ``"drn"``, the reference's DRNSeg (Yu et al. 2017, ``segment.py``: 1x1 classifier and a
fixed bilinear x8 transposed convolution), and ``"gcn"``, Global Convolutional Network blocks
with Boundary Refinement fused coarse to fine (Peng et al., CVPR 2017, section 3.3).
``context="parsenet"`` adds ParseNet's global context (Liu et al. 2015) before the classifier.
"""

import math

import keras
from keras import layers

from keras_drn.layers.bilinear_upsampling import BilinearUpsampling, ResizeBy, ResizeLike
from keras_drn.layers.boundary_refinement import BoundaryRefinement
from keras_drn.layers.global_context import GlobalContext
from keras_drn.layers.global_conv import GlobalConvBlock
from keras_drn.models.drn import build_drn, checkpoint_names, level_outputs
from keras_drn.models.preprocessing import normalization_layer, resolve_statistics
from keras_drn.models.variants import GCN_TAPS, VARIANTS
from keras_drn.weights.loading import load_weights

HEADS = ("drn", "gcn")
CONTEXTS = (None, "parsenet")
UPSAMPLINGS = ("deconv", "bilinear")


def _check(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; received {name}={value!r}.")


def _upsample_x2(x, reference, upsampling, num_classes, name):
    """x2 upsampling of a score map, then cropped or resized to ``reference``'s size when one
    is given (a finer score map or the image)."""
    if upsampling == "bilinear":
        if reference is None:
            return ResizeBy(2, name=name)(x)
        return ResizeLike("bilinear", name=name)([x, reference])
    x = layers.Conv2DTranspose(
        num_classes, 4, strides=2, padding="same", use_bias=False, name=f"{name}_deconv"
    )(x)
    return x if reference is None else ResizeLike("crop", name=name)([x, reference])


def _gcn_head(inputs, levels, taps, num_classes, kernel_size, upsampling):
    """GCN -> BR on every tap, then from the coarsest: (x2 up when the stride changes) + add
    + BR; finally x2 steps (each followed by BR) back to the image size."""
    scores = [
        BoundaryRefinement(name=f"br_level{level}")(
            GlobalConvBlock(num_classes, kernel_size, name=f"gcn_level{level}")(levels[level])
        )
        for level, _ in taps
    ]
    x = scores[-1]
    for index in range(len(taps) - 2, -1, -1):
        level, stride = taps[index]
        if stride != taps[index + 1][1]:
            x = _upsample_x2(x, scores[index], upsampling, num_classes, f"up_level{level}")
        x = BoundaryRefinement(name=f"br_fuse_level{level}")(layers.Add()([x, scores[index]]))
    steps = int(math.log2(taps[0][1]))
    for step in range(steps):
        reference = inputs if step == steps - 1 else None
        x = _upsample_x2(x, reference, upsampling, num_classes, f"up_final{step}")
        x = BoundaryRefinement(name=f"br_final{step}")(x)
    return x


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
):
    """Builds a semantic segmentation model on a DRN backbone.

    Args:
        backbone: a DRN name from ``keras_drn.list_models()`` (the reference uses drn_d_22,
            drn_d_38, drn_d_105, drn_c_26, drn_c_42, drn_a_50).
        num_classes: number of classes (Cityscapes: 19).
        head: ``"drn"`` (reference DRNSeg) or ``"gcn"`` (GCN + Boundary Refinement on levels
            2, 3, 4, 8 of DRN-C/D, 1, 2, 4 of DRN-A, fused coarse to fine).
        context: ``None`` or ``"parsenet"`` (global context on the last level, see
            ``keras_drn.layers.GlobalContext``).
        anti_alias: ``None``, ``"blur"`` or ``"adaptive"``: low-pass filters before the
            backbone's downsamplings.
        backbone_weights: ``None``, ``"imagenet"`` or a weights file for the backbone.
        weights: ``None`` or a weights file of the whole segmenter (``.weights.h5``,
            ``.keras``, or a reference ``segment.py`` checkpoint).
        upsampling: ``"deconv"`` (head "drn": the reference's fixed bilinear transposed conv;
            head "gcn": learned x2 transposed convs) or ``"bilinear"`` (resizing).
        input_shape: ``(height, width, 3)``, default any size.
        gcn_kernel_size: GCN kernel size (paper default 15).
        preprocessing: ``None`` (inputs are already normalised, as in the reference),
            ``"imagenet"`` or ``(mean, std)`` of 0-1 RGB: the model then takes raw 0-255 RGB
            and its first layer, ``preprocessing`` (``keras.layers.Normalization``), computes
            ``(x / 255 - mean) / std``; the statistics are saved in the ``.keras`` file
            (``keras_drn.models.preprocessing.preprocessing_of(model)`` reads them back).
        dilation_strategy: ``"auto"``, ``"direct"`` or ``"phase"``: how the backbone's dilated
            levels run (see ``keras_drn.DRN_D_22``); the same weights and outputs either way.
        name: model name (default ``"<backbone>_<head>_segmenter"``).

    Returns:
        A functional ``keras.Model``: images ``(batch, H, W, 3)`` -> class logits
        ``(batch, H, W, num_classes)`` (float32 under mixed precision), for any H and W.
        Apply a softmax (or log-softmax, as the reference does) for probabilities.
    """
    key = str(backbone).lower().replace("-", "_")
    if key not in VARIANTS:
        raise ValueError(f"Unknown backbone {backbone!r}; valid names are {sorted(VARIANTS)}.")
    _check("head", head, HEADS)
    _check("context", context, CONTEXTS)
    _check("upsampling", upsampling, UPSAMPLINGS)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; received {num_classes!r}.")
    statistics = resolve_statistics(preprocessing)
    input_tensor = None
    if statistics is not None:
        image = keras.Input(tuple(input_shape), name="image")
        input_tensor = normalization_layer(*statistics)(image)
    base = build_drn(
        key, include_top=False, weights=backbone_weights, input_shape=input_shape,
        input_tensor=input_tensor, anti_alias=anti_alias, dilation_strategy=dilation_strategy,
    )
    inputs = base.input
    spec = VARIANTS[key]
    last = 4 if spec.arch == "A" else max(n + 1 for n, d in enumerate(spec.depths) if d)
    levels = level_outputs(base, range(1, last + 1))
    if context == "parsenet":
        levels[last] = GlobalContext(name="context")(levels[last])
    if head == "drn":
        x = layers.Conv2D(
            num_classes,
            1,
            kernel_initializer=keras.initializers.RandomNormal(0.0, math.sqrt(2.0 / num_classes)),
            name="seg",
        )(levels[last])
        if upsampling == "deconv":
            x = BilinearUpsampling(8, name="up")([x, inputs])
        else:
            x = ResizeLike("bilinear", name="up")([x, inputs])
    else:
        taps = GCN_TAPS[spec.arch]
        if spec.arch != "A":
            taps = taps[:-1] + ((last, 8),)
        x = _gcn_head(inputs, levels, list(taps), num_classes, gcn_kernel_size, upsampling)
    x = layers.Activation("linear", dtype="float32", name="logits")(x)
    model = keras.Model(inputs, x, name=name or f"{key}_{head}_segmenter")
    if weights is not None:
        load_weights(model, weights, checkpoint_names(key))
    return model
