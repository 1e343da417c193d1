"""Public constructors (``DRN_C_26`` ...), ``list_models``, ``get_model`` and
``convert_checkpoint``, made from the variant table in ``keras_drn.models.variants``."""

import os

import numpy as np

from keras_drn.atomic import write_atomically
from keras_drn.models.drn import build_drn, checkpoint_names, feature_info
from keras_drn.models.segmenter import DRNSegmenter
from keras_drn.models.variants import PARAMETERS, VARIANTS
from keras_drn.weights.convert import state_dict_to_model
from keras_drn.weights.layouts import detect_layout
from keras_drn.weights.loading import read_checkpoint

_DOC = """Builds {title} (Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017).

{arch_doc}

Args:
    include_top: end with global average pooling, the ``fc`` classifier and
        ``classifier_activation`` (the reference's AvgPool2d(28) at 224x224, at any size).
    weights: ``None`` (random init as in the reference), ``"imagenet"`` (the variant's
        default ImageNet file: imgclsmob's where it exists, else the official one),
        ``"imagenet:imgclsmob"`` / ``"imagenet:official"`` (that source), or the path to a
        ``.weights.h5``, ``.keras``, ``.pth``/``.pt`` or ``.pth.zip`` file.
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
    dilation_strategy: how the dilated levels run: ``"direct"`` (dilated convolutions),
        ``"phase"`` (undilated convolutions on the phase sub-maps stacked into the batch,
        ``keras_drn.layers.SpaceToPhase``; levels whose size is not a multiple of the
        dilation run directly when ``input_shape`` is fixed) or ``"auto"`` (the choice of
        ``keras_drn.models.drn.AUTO_DILATION_STRATEGY`` for the backend and device: "direct"
        everywhere until measured on a GPU). The same layers, weights and outputs either way.
    name: model name (default ``"{name}"``).
    include_preprocessing: ``None`` (default: ``True`` when ``weights`` names pretrained
        weights, ``"imagenet"`` or ``"imagenet:<source>"``, else ``False``), ``True`` or
        ``False``. ``True``: the model takes raw 0-255 RGB and its first layer,
        ``preprocessing`` (``keras.layers.Normalization``, saved with the model), computes
        ``(x / 255 - mean) / std`` with the weights' mean/std from the weights table
        (``keras_drn.weights.sources``; ImageNet's for every published file), or ImageNet's
        when ``weights`` is ``None`` or a file. ``False``: the model takes normalised images,
        ``keras_drn.preprocess_input(x, weights="imagenet")``.

Input: images ``(batch, height, width, 3)``: raw 0-255 RGB with the ``preprocessing`` layer,
else normalised. Output: ``(batch, classes)`` with the top,
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
        dilation_strategy="auto",
        name=None,
        include_preprocessing=None,
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
            dilation_strategy=dilation_strategy,
            name=name,
            include_preprocessing=include_preprocessing,
        )

    constructor.__name__ = constructor.__qualname__ = variant.upper()
    channels = feature_info(variant)[-1]["channels"]
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
    ``kwargs`` go to the constructor (``include_top``, ``weights``, ``classes``,
    ``dilation_strategy``, ...)."""
    key = str(name).lower().replace("-", "_")
    if key not in VARIANTS:
        raise ValueError(f"Unknown model name {name!r}; valid names are {list_models()}.")
    return build_drn(key, **kwargs)


def model_for_checkpoint(state_dict, variant):
    """A keras_drn model shaped like the checkpoint: a segmenter for ``segment.py`` files,
    else a classifier with the checkpoint's number of classes (``fc`` or pytorchcv's
    ``output``), else a backbone."""
    if detect_layout(state_dict) == "segment":
        classes = int(np.shape(state_dict["seg.weight"])[0])
        return DRNSegmenter(variant, num_classes=classes)
    for head in ("fc.weight", "output.weight"):
        if head in state_dict:
            return get_model(variant, classes=int(np.shape(state_dict[head])[0]))
    return get_model(variant, include_top=False)


def convert_checkpoint(source, destination, variant):
    """Converts a PyTorch DRN checkpoint (any layout of ``keras_drn.weights.layouts``, ``.pth``
    or ``.pth.zip``) to a Keras ``.weights.h5`` file, atomically.

    The result loads with ``weights=destination`` into the same model: ``DRNSegmenter(
    variant, num_classes=...)`` for a segmentation checkpoint, else ``get_model(variant,
    classes=...)`` (or ``include_top=False`` when the file has no classifier).
    Returns the built model.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; valid names are {sorted(VARIANTS)}.")
    destination = os.fspath(destination)
    if not destination.endswith(".weights.h5"):
        raise ValueError(f"The destination must end with .weights.h5; received {destination!r}.")
    state_dict = read_checkpoint(source)
    model = model_for_checkpoint(state_dict, variant)
    state_dict_to_model(state_dict, model, checkpoint_names(variant), origin=os.fspath(source))
    write_atomically(destination, lambda path: model.save_weights(path, overwrite=True),
                     what="destination")
    return model
