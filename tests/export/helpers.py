"""Shared by the export tests: small models with the code paths of a DRN, and independent
runners (the LiteRT interpreter used directly, Keras's predict)."""

import keras
import numpy as np
import pytest

import keras_drn


def needs(*modules):
    for module in modules:
        pytest.importorskip(module)


def tiny_segmenter(classes=3, size=None):
    """A 2-conv model with one dilated conv: fast to export, same code paths as a DRN."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras_drn.layers.DilatedConv2D(8, 3, padding="same", dilation_rate=2, activation="relu")(
        inputs)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1)(x))


def drn_segmenter(**kwargs):
    return keras_drn.DRNSegmenter("drn_d_22", num_classes=kwargs.pop("num_classes", 3), **kwargs)


def keras_outputs(model, x):
    return np.asarray(model.predict(x, verbose=0), "float32")


def dilated_keras_convs(model):
    """Conv layers with a dilation > 1 anywhere in ``model``, nested blocks included."""
    return sum(
        1 for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
        and max(layer.dilation_rate) > 1
    )


def litert_run(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    assert tuple(source["shape"]) == x.shape
    interpreter.set_tensor(source["index"], x)
    interpreter.invoke()
    ops = {detail["op_name"] for detail in interpreter._get_ops_details()}
    return interpreter.get_tensor(target["index"]), ops
