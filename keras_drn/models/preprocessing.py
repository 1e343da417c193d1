"""The normalisation a model carries: raw 0-255 RGB in, ``(x / 255 - mean) / std`` inside.

As keras-hub's image converters and ``keras.applications``' ``include_preprocessing``, the
statistics the weights expect (ImageNet's for the published checkpoints) or measured on the
training data live in the model as a ``keras.layers.Normalization`` layer named
``"preprocessing"``, saved in the ``.keras`` file. Whoever feeds the model (pipelines,
evaluation, predict, export) passes raw images and never re-derives statistics.
"""

import math

import keras
import numpy as np

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD

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
