"""The normalisation a model carries: raw 0-255 RGB in, ``(x / 255 - mean) / std`` inside.

One contract for every constructor (``keras_drn.DRN_C_26`` and the other variants,
``build_drn``, ``DRNSegmenter``, ``build_classifier``), as ``keras.applications``'
``include_preprocessing``: ``None`` (the default) adds the normalisation when pretrained
weights are loaded (``weights="imagenet"``, a segmenter's ``backbone_weights="imagenet"``) and
not otherwise; ``True`` adds it, ``False`` leaves it out. The statistics are those of the
weights, read from the weights table (``keras_drn.weights.sources``: ImageNet's for the
published checkpoints), else ImageNet's or a ``mean``/``std`` given. They live in the model as
a ``keras.layers.Normalization`` layer named ``"preprocessing"``, saved in the ``.keras``
file: whoever feeds the model (pipelines, evaluation, predict, export) passes raw images and
never re-derives statistics. A model built without it takes what ``preprocess_input`` returns.
"""

import math

import keras
import numpy as np

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.weights import sources

LAYER_NAME = "preprocessing"


def resolve_statistics(preprocessing):
    """``None`` (no normalisation layer), ``"imagenet"``, or a pair ``(mean, std)`` of three
    numbers each for 0-1 RGB -> ``None`` or ``(mean, std)`` as float tuples. ValueError naming
    the value otherwise."""
    if preprocessing is None:
        return None
    if isinstance(preprocessing, str):
        if preprocessing != "imagenet":
            raise ValueError(f"preprocessing must be None, 'imagenet' or (mean, std); "
                             f"received {preprocessing!r}.")
        return tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
    try:
        mean, std = preprocessing
        mean = tuple(float(v) for v in mean)
        std = tuple(float(v) for v in std)
    except (TypeError, ValueError):
        mean = std = ()
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0 or not all(
            math.isfinite(v) for v in mean + std):
        raise ValueError("preprocessing must be None, 'imagenet' or (mean, std) with 3 finite "
                         f"numbers each for 0-1 RGB, std positive; received {preprocessing!r}.")
    return mean, std


def normalization_layer(mean, std, name=LAYER_NAME):
    """``keras.layers.Normalization`` computing ``(x / 255 - mean) / std`` for 0-255 inputs,
    in float32 under any dtype policy (under mixed_bfloat16 the normalised image would
    otherwise carry bfloat16's 8-bit rounding of the raw values and of the statistics; the
    first convolution casts it to its compute dtype)."""
    mean, std = np.asarray(mean, "float64"), np.asarray(std, "float64")
    return keras.layers.Normalization(mean=(255 * mean).tolist(),
                                      variance=((255 * std) ** 2).tolist(), name=name,
                                      dtype="float32")


def preprocessing_of(model):
    """``(mean, std)`` (0-1 RGB) of the model's ``preprocessing`` layer, or ``None`` when the
    model has none (it then expects normalised inputs)."""
    try:
        layer = model.get_layer(LAYER_NAME)
    except ValueError:
        return None
    if not isinstance(layer, keras.layers.Normalization):
        return None
    config = layer.get_config()
    mean = np.asarray(config["mean"], "float64").reshape(-1) / 255
    std = np.sqrt(np.asarray(config["variance"], "float64").reshape(-1)) / 255
    return tuple(mean.tolist()), tuple(std.tolist())


def with_preprocessing(model, mean, std, name=None):
    """A new model: raw 0-255 RGB ``image`` -> ``preprocessing`` -> ``model`` (nested, sharing
    its weights). For models built to take normalised inputs (``keras_drn.DRN_C_26(...)``)."""
    if preprocessing_of(model) is not None:
        raise ValueError(f"{model.name!r} already has a {LAYER_NAME!r} layer.")
    inputs = keras.Input(tuple(model.input_shape[1:]), name="image")
    outputs = model(normalization_layer(mean, std)(inputs))
    return keras.Model(inputs, outputs, name=name or model.name)


def resolve_include_preprocessing(include_preprocessing, weights, variant=None, mean=None,
                                  std=None):
    """``(mean, std)`` of the ``preprocessing`` layer a constructor adds, or ``None`` for none.

    Args:
        include_preprocessing: ``None`` (add it when ``weights`` names pretrained weights or
            ``mean``/``std`` are given), ``True`` or ``False``.
        weights: the constructor's ``weights`` (a segmenter's ``backbone_weights``): a name of
            the weights table (``"imagenet"``, ``"imagenet:<source>"``) is pretrained; its
            statistics come from the table's row for ``variant``. ``None`` or a file path
            have no statistics: ImageNet's are used when the layer is asked for.
        variant: the DRN variant whose row of the table ``weights`` loads.
        mean, std: statistics of 0-1 RGB (three numbers each) that override the table's;
            they imply the layer, and contradict ``include_preprocessing=False``.
    """
    if include_preprocessing not in (None, True, False):
        raise ValueError(f"include_preprocessing must be None, True or False; received "
                         f"include_preprocessing={include_preprocessing!r}.")
    given = None
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError(f"Give both mean and std (0-1 RGB) or neither; received "
                             f"mean={mean!r}, std={std!r}.")
        if include_preprocessing is False:
            raise ValueError(
                f"mean={mean!r} and std={std!r} are the statistics of the 'preprocessing' "
                "layer, and include_preprocessing=False builds the model without one: drop "
                "mean/std, or drop include_preprocessing=False.")
        given = resolve_statistics((mean, std))
    pretrained = isinstance(weights, str) and sources.parse(weights) is not False
    if include_preprocessing is None:
        include_preprocessing = pretrained or given is not None
    if not include_preprocessing:
        return None
    if given is not None:
        return given
    if pretrained:
        return sources.statistics(weights, variant)
    return tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)


def preprocess_input(x, weights="imagenet"):
    """Normalises raw RGB images as the weights named ``weights`` expect them:
    ``(x / 255 - mean) / std`` per channel, as ``keras.applications``' ``preprocess_input``.

    For models built with ``include_preprocessing=False`` (a model with its ``preprocessing``
    layer takes the raw images themselves).

    Args:
        x: images ``(..., 3)``, RGB on the 0-255 scale (uint8 or float): a numpy array (or
            anything ``numpy.asarray`` takes) or a tensor of the Keras backend (TensorFlow,
            JAX or PyTorch).
        weights: whose statistics: ``"imagenet"`` (and ``"imagenet:<source>"``: every
            published DRN checkpoint), or ``"cityscapes"`` (the reference's Cityscapes
            segmenters, fyu/drn ``segment.py``); ``keras_drn.weights.sources.STATISTICS``.

    Returns:
        The normalised images, the shape of ``x``: a float32 numpy array for numpy input
        (a float64 array stays float64), else a float tensor of the backend (float32 for
        integer input).
    """
    mean, std = sources.statistics(weights)
    if keras.ops.is_tensor(x) or keras.backend.is_keras_tensor(x):
        _check_channels(x.shape)
        dtype = keras.backend.standardize_dtype(x.dtype)
        if "float" not in dtype:
            x = keras.ops.cast(x, "float32")
            dtype = "float32"
        shift = keras.ops.convert_to_tensor([255 * v for v in mean], dtype)
        scale = keras.ops.convert_to_tensor([255 * v for v in std], dtype)
        return keras.ops.divide(keras.ops.subtract(x, shift), scale)
    keep = isinstance(x, np.ndarray) and x.dtype == np.float64
    x = np.asarray(x)
    _check_channels(x.shape)
    dtype = x.dtype if keep else np.dtype("float32")
    return ((x.astype(dtype) / dtype.type(255) - np.asarray(mean, dtype))
            / np.asarray(std, dtype)).astype(dtype)


def _check_channels(shape):
    if len(shape) == 0 or shape[-1] not in (3, None):
        raise ValueError(f"preprocess_input takes RGB images (..., 3); received the shape "
                         f"{tuple(shape)}.")
