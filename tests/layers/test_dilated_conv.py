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


def _traced(layer, spec):
    import tensorflow as tf

    return tf.function(layer).get_concrete_function(spec)


def _op_types(layer, x):
    import tensorflow as tf

    return {op.type for op in _traced(layer, tf.TensorSpec(x.shape)).graph.get_operations()}


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


def _conv_input_batches(traced):
    """The batch size of each Conv2D op's input in the traced graph."""
    return [op.inputs[0].shape[0] for op in traced.graph.get_operations()
            if op.type == "Conv2D"]


@on_tensorflow
@pytest.mark.parametrize("height, width, dilation, kernel_size", [
    (12, 9, 2, 3), (11, 8, 1, 3), (7, 5, 4, 3), (9, 6, 1, 1), (6, 7, (2, 3), (3, 1))])
@pytest.mark.parametrize("dynamic", [False, True])
def test_one_image_runs_as_two_halves_on_a_tensorflow_cpu(height, width, dilation,
                                                          kernel_size, dynamic):
    """oneDNN's batch-1 kernel is slow: a single image's wide convolution runs as its two
    halves in a batch of 2, with the same outputs and gradients as Keras' Conv2D."""
    import tensorflow as tf

    channels = dilated_conv.SPLIT_MIN_CHANNELS
    x = random_input((1, height, width, channels))
    kwargs = {"kernel_size": kernel_size, "padding": "same", "dilation_rate": dilation}
    ours, plain = DilatedConv2D(channels, **kwargs), keras.layers.Conv2D(channels, **kwargs)
    ours.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(ours.get_weights())
    spec = tf.TensorSpec((1, None, None, channels) if dynamic else x.shape)
    run = _traced(ours, spec)
    assert _conv_input_batches(run) == [2]
    np.testing.assert_allclose(run(tf.constant(x)).numpy(), to_numpy(plain(x)), rtol=1e-5,
                               atol=1e-5)
    gradients = []
    for layer in (ours, plain):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs) ** 2)
        gradients.append(tape.gradient(loss, [inputs, layer.kernel]))
    for a, b in zip(*gradients):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-3)


@on_tensorflow
def test_no_split_for_batches_narrow_or_strided_convolutions_and_export_graphs():
    import tensorflow as tf

    channels = dilated_conv.SPLIT_MIN_CHANNELS
    wide = DilatedConv2D(channels, 3, padding="same")
    assert _conv_input_batches(_traced(wide, tf.TensorSpec((2, 8, 8, channels)))) == [2]
    assert _conv_input_batches(_traced(wide, tf.TensorSpec((None, 8, 8, channels)))) == [None]
    with dilated_conv.plain_convolutions():
        assert _conv_input_batches(_traced(wide, tf.TensorSpec((1, 8, 8, channels)))) == [1]
    narrow = DilatedConv2D(channels // 2, 3, padding="same")
    assert _conv_input_batches(_traced(narrow, tf.TensorSpec((1, 8, 8, channels)))) == [1]
    strided = DilatedConv2D(channels, 3, strides=2, padding="valid")
    assert _conv_input_batches(_traced(strided, tf.TensorSpec((1, 9, 9, channels)))) == [1]


def test_export_traces_plain_convolutions(monkeypatch):
    from keras_drn.export import tensorflow as export_tensorflow

    seen = []
    monkeypatch.setattr(export_tensorflow, "_write_with_tensorflow",
                        lambda *args: seen.append(dilated_conv._split_rows.get()))
    export_tensorflow.write_with_tensorflow(None, "path", None, None)
    assert seen == [False] and dilated_conv._split_rows.get()
