"""``build_classifier``: a DRN backbone with a new classification head, for fine-tuning.

Transfer learning as in Keras's guide and as Yu et al. 2017 fine-tune DRNs from ImageNet
classifiers: the backbone is a nested model, so ``set_backbone_trainable`` freezes it for a
head-only phase (its BatchNormalization then runs in inference mode) and unfreezes it for the
whole network, optionally keeping BatchNormalization frozen (``keras_drn.set_trainable``).
"""

import keras

from keras_drn.models.drn import build_drn
from keras_drn.models.preprocessing import normalization_layer, resolve_include_preprocessing
from keras_drn.models.trainable import set_trainable
from keras_drn.models.variants import VARIANTS

BACKBONE = "backbone"  # the name of the nested backbone model


def build_classifier(num_classes, backbone="drn_d_22", weights=None, mean=None, std=None,
                     dropout=0.0, input_shape=(None, None, 3), name=None,
                     include_preprocessing=None):
    """A DRN classifier with a new head for ``num_classes`` classes.

    Graph: ``image`` -> ``preprocessing`` (with ``include_preprocessing``: ``Normalization``,
    ``(x / 255 - mean) / std``) -> ``backbone`` (the DRN without its top, ``weights`` loaded,
    a nested model so one flag freezes it) -> ``avgpool`` -> optional ``dropout`` -> ``fc``
    (Dense) -> ``predictions`` (softmax, float32 under mixed precision).

    Args:
        num_classes: classes of the new head (at least 2).
        backbone: DRN variant (``keras_drn.list_models()``).
        weights: backbone weights: ``None`` (random), ``"imagenet"`` (or
            ``"imagenet:<source>"``) or a weights file.
        mean, std: per-channel statistics of 0-1 RGB for the ``preprocessing`` layer
            (three numbers each); they imply ``include_preprocessing=True``. Default: the
            weights' from the weights table (``keras_drn.weights.sources``; ImageNet's for
            every published file), else ImageNet's.
        dropout: dropout rate before ``fc``.
        input_shape: ``(height, width, 3)``; any size by default.
        name: model name (default ``"<backbone>_classifier"``).
        include_preprocessing: ``None`` (default: ``True`` when ``weights`` names pretrained
            weights or ``mean``/``std`` are given, else ``False``), ``True`` or ``False``.
            ``True``: the model takes raw 0-255 RGB (float or uint8) and normalises inside;
            ``False``: it takes normalised images (``keras_drn.preprocess_input``).

    Returns:
        A functional ``keras.Model``: images ``(batch, H, W, 3)`` -> probabilities
        ``(batch, num_classes)``.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; received {num_classes!r}.")
    key = str(backbone).lower().replace("-", "_")
    if key not in VARIANTS:
        raise ValueError(f"Unknown backbone {backbone!r}; valid names are {sorted(VARIANTS)}.")
    statistics = resolve_include_preprocessing(include_preprocessing, weights, key, mean, std)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs if statistics is None else normalization_layer(*statistics)(inputs)
    base = build_drn(key, include_top=False, weights=weights, name=BACKBONE,
                     include_preprocessing=False)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(num_classes, name="fc")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name or f"{backbone}_classifier")


def set_backbone_trainable(model, trainable, train_bn=True):
    """Freezes (``trainable=False``: every layer of the backbone, BatchNormalization in
    inference mode, as Keras recommends) or unfreezes the backbone of a ``build_classifier``
    model (its nested model ``"backbone"``); with ``train_bn=False`` its BatchNormalization
    layers stay frozen after unfreezing (``keras_drn.set_trainable``)."""
    set_trainable(model.get_layer(BACKBONE), trainable, train_bn)
