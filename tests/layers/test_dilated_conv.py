import keras
import numpy as np
import pytest

from keras_drn.layers import DilatedConv2D, dilated_conv
from tests.helpers import random_input, run_layer_test, to_numpy

on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow graph check"
)


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_standard_checks(dilation, tmp_path):
    kwargs = {"filters": 5, "kernel_size": 3, "padding": "same", "dilation_rate": dilation}
    run_layer_test(DilatedConv2D, kwargs, (2, 11, 9, 4), (2, 11, 9, 5), tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "padding": "same", "dilation_rate": 2},
        {"kernel_size": 3, "padding": "valid", "dilation_rate": 4},
        {"kernel_size": (3, 1), "padding": "same", "dilation_rate": (2, 3), "use_bias": True},
        {"kernel_size": 3, "padding": "valid", "strides": 2},
        {"kernel_size": 3, "padding": "same", "dilation_rate": 2, "groups": 2},
    ],
)
def test_same_outputs_and_gradients_as_keras_conv2d(kwargs):
    x = random_input((2, 13, 10, 4))
    ours, plain = DilatedConv2D(4, **kwargs), keras.layers.Conv2D(4, **kwargs)
    ours.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(ours.get_weights())
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(plain(x)), rtol=1e-5, atol=1e-5)

    # One training step of each through model.fit leaves the same weights.
    y = np.random.default_rng(1).normal(size=plain(x).shape).astype("float32")
    for layer in (ours, plain):
        model = keras.Sequential([keras.Input(x.shape[1:]), layer])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    for a, b in zip(ours.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _op_types(layer, x):
    import tensorflow as tf

    graph = tf.function(layer).get_concrete_function(tf.TensorSpec(x.shape)).graph
    return {op.type for op in graph.get_operations()}


@on_tensorflow
def test_one_native_convolution_on_tensorflow(monkeypatch):
    x = random_input((1, 12, 12, 3))
    layer = DilatedConv2D(4, 3, padding="same", dilation_rate=2)
    expected = to_numpy(layer(x))
    if dilated_conv.native_dilation_supported("float32"):
        ops = _op_types(layer, x)
        assert "Conv2D" in ops and not ops & {"SpaceToBatchND", "BatchToSpaceND"}
    # Where TensorFlow cannot differentiate a native dilation, Keras' path is kept.
    monkeypatch.setattr(dilated_conv, "native_dilation_supported", lambda dtype: False)
    assert "SpaceToBatchND" in _op_types(layer, x)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


@on_tensorflow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_on_tensorflow(policy):
    # oneDNN has no float16 gradient for a native dilation: that dtype keeps Keras' path.
    x = random_input((2, 12, 12, 3))
    model = keras.Sequential(
        [keras.Input((None, None, 3)), DilatedConv2D(4, 3, padding="same", dilation_rate=2,
                                                     dtype=policy)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = model.get_weights()[0].copy()
    model.fit(x, np.zeros((2, 12, 12, 4), "float32"), epochs=1, verbose=0)
    assert np.abs(model.get_weights()[0] - before).max() > 0


@pytest.mark.parametrize("size, strides, dilation", [((10, 8), 2, 1), ((9, 12), 2, 1),
                                                     ((10, 11), 1, 2), ((7, 8), 2, 1)])
def test_reference_conv_pads_like_pytorch(size, strides, dilation):
    """At stride 2 on even sizes Keras's "same" pads (0, 1); the reference pads (1, 1)."""
    torch = pytest.importorskip("torch")
    x = random_input((1, *size, 3))
    conv = dilated_conv.reference_conv(4, 3, strides=strides, dilation=dilation)
    ours = to_numpy(dilated_conv.pad_symmetric(conv, x))
    kernel = torch.from_numpy(to_numpy(conv.kernel).transpose(3, 2, 0, 1).copy())
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), kernel,
                                     stride=strides, dilation=dilation,
                                     padding=dilated_conv.symmetric_padding(3, dilation))
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)
    assert not conv.use_bias
