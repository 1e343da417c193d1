import numpy as np
import pytest

from keras_drn.layers import BoundaryRefinement
from tests.helpers import random_input, run_layer_test, to_numpy


def test_standard_checks(tmp_path):
    run_layer_test(BoundaryRefinement, {}, (2, 9, 10, 6), (2, 9, 10, 6), tmp_path)


def _conv_same(x, kernel, bias):
    """numpy 'same' convolution (cross-correlation, as Keras), x (H, W, C), kernel (k, k, C, O)."""
    k = kernel.shape[0]
    padded = np.pad(x, ((k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    out = np.zeros(x.shape[:2] + (kernel.shape[-1],))
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = np.tensordot(padded[i:i + k, j:j + k], kernel, axes=3)
    return out + bias


def test_is_the_residual_of_conv_relu_conv():
    """S + conv2(ReLU(conv1(S))) with both convolutions random: removing the ReLU, swapping
    the convolutions or dropping the residual all change the output."""
    x = random_input((1, 8, 8, 3))
    layer = BoundaryRefinement()
    layer(x)
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    kernel1, bias1, kernel2, bias2 = weights
    assert kernel1.shape == kernel2.shape == (3, 3, 3, 3)
    s = to_numpy(x)[0].astype("float64")
    hidden = _conv_same(s, kernel1, bias1)
    assert (hidden < 0).mean() > 0.2  # the ReLU has work to do
    expected = s + _conv_same(np.maximum(hidden, 0), kernel2, bias2)
    np.testing.assert_allclose(to_numpy(layer(x))[0], expected, rtol=1e-4, atol=1e-4)
    without_relu = s + _conv_same(hidden, kernel2, bias2)
    assert np.abs(without_relu - expected).max() > 0.1


def test_bad_kernel_size():
    with pytest.raises(ValueError, match="odd"):
        BoundaryRefinement(kernel_size=2)
