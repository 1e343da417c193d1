"""BlurPool: the standard layer checks, the binomial filters, the reference's reflect padded
depthwise conv, and every input size (padding that reflects again below the padding)."""

import keras
import numpy as np
import pytest

from keras_drn.layers import BlurPool, blur_pool
from keras_drn.layers.blur_pool import binomial_filter, pad_spatial
from tests.helpers import random_input, run_layer_test, to_numpy


@pytest.mark.parametrize("filter_size", [1, 3, 4, 7])
def test_standard_checks(filter_size, tmp_path):
    run_layer_test(BlurPool, {"filter_size": filter_size}, (2, 9, 10, 4), (2, 5, 5, 4), tmp_path)


def test_binomial_filters():
    np.testing.assert_allclose(binomial_filter(3), np.outer([1, 2, 1], [1, 2, 1]) / 16)
    np.testing.assert_allclose(binomial_filter(4), np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64)
    for size in range(1, 8):
        assert binomial_filter(size).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("filter_size", [2, 3, 4, 5, 6, 7])
def test_matches_reflect_padded_depthwise_conv(filter_size):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    x = random_input((2, 11, 8, 3))
    ours = to_numpy(BlurPool(filter_size=filter_size)(x))
    lo, hi = (filter_size - 1) // 2, filter_size // 2
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    kernel = torch.from_numpy(binomial_filter(filter_size)).float()[None, None].repeat(3, 1, 1, 1)
    ref = f.conv2d(f.pad(xt, (lo, hi, lo, hi), mode="reflect"), kernel, stride=2, groups=3)
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_constant_input_is_kept_and_size_one_subsamples():
    x = np.full((1, 8, 8, 2), 3.0, "float32")
    np.testing.assert_allclose(to_numpy(BlurPool(filter_size=5)(x)), 3.0, rtol=1e-6)
    y = random_input((1, 7, 6, 2))
    np.testing.assert_array_equal(to_numpy(BlurPool(filter_size=1)(y)), y[:, ::2, ::2])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"filter_size": 8}, "filter_size"), ({"strides": 0}, "strides"),
     ({"pad_mode": "x"}, "pad_mode")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlurPool(**kwargs)


def _numpy_blur_pool(x, filter_size, strides=2, mode="reflect"):
    """The layer's definition in NumPy: np.pad (which reflects again as often as needed),
    then the strided depthwise binomial filter."""
    lo, hi = (filter_size - 1) // 2, filter_size // 2
    padded = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode=mode)
    kernel = binomial_filter(filter_size)
    rows, cols = -(-x.shape[1] // strides), -(-x.shape[2] // strides)
    out = np.zeros((x.shape[0], rows, cols, x.shape[3]))
    for i in range(rows):
        for j in range(cols):
            window = padded[:, i * strides:i * strides + filter_size,
                            j * strides:j * strides + filter_size]
            out[:, i, j] = np.einsum("bhwc,hw->bc", window, kernel)
    return out


def _todays_pad(x, pads, mode="reflect"):
    """The padding before any-size support: keras.ops.pad alone."""
    return keras.ops.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]], mode=mode)


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_pad_spatial_is_numpys_padding_at_every_side(mode):
    """Reflect below the side MirrorPad and torch's pad accept (they raise there); exactly
    keras.ops.pad wherever that worked; symmetric right on torch too (Keras's torch pad
    repeats the edge)."""
    for height in range(1, 10):
        width = 10 - height
        x = random_input((1, height, width, 2))
        for pads in (((1, 2), (1, 2)), ((3, 3), (0, 2)), ((1, 1), (3, 3))):
            expected = np.pad(x, ((0, 0), *pads, (0, 0)), mode=mode)
            np.testing.assert_array_equal(to_numpy(pad_spatial(x, pads, mode)), expected)
            if mode == "reflect" and min(height, width) > 3:
                np.testing.assert_array_equal(to_numpy(_todays_pad(x, pads)), expected)


@pytest.mark.parametrize("filter_size", [3, 4, 5, 7])
def test_every_side_from_1_to_9(filter_size, monkeypatch):
    """Any input size works (MirrorPad / torch raised below 9 px inside a DRN): the output is
    the NumPy definition's, and where plain reflect padding was valid, bit for bit today's."""
    layer = BlurPool(filter_size=filter_size)
    outputs = {}
    for height in range(1, 10):
        for width in {height, 10 - height}:
            x = random_input((2, height, width, 3))
            ours = to_numpy(layer(x))
            assert ours.shape == (2, -(-height // 2), -(-width // 2), 3)
            np.testing.assert_allclose(ours, _numpy_blur_pool(x, filter_size), atol=1e-5)
            outputs[height, width] = (x, ours)
    monkeypatch.setattr(blur_pool, "pad_spatial", _todays_pad)
    reach = filter_size // 2
    for (height, width), (x, ours) in outputs.items():
        if min(height, width) > reach:
            np.testing.assert_array_equal(to_numpy(layer(x)), ours)


def test_symmetric_padding_matches_numpy_on_every_backend():
    x = random_input((1, 9, 5, 2))
    ours = to_numpy(BlurPool(filter_size=6, pad_mode="symmetric")(x))
    np.testing.assert_allclose(ours, _numpy_blur_pool(x, 6, mode="symmetric"), atol=1e-5)


def test_sizes_unknown_until_run_time():
    """In a TensorFlow graph with unknown height and width the padding is gathered: the same
    values as with static shapes, small or large."""
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("graph tensors of unknown shape are TensorFlow's")
    layer = BlurPool(filter_size=4)
    graph = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 3))])
    for height, width in ((1, 1), (2, 3), (12, 9)):
        x = random_input((1, height, width, 3))
        np.testing.assert_allclose(graph(x).numpy(), to_numpy(layer(x)), atol=1e-6)
