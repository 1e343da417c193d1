import numpy as np
import pytest

from keras_drn.layers import BlurPool
from keras_drn.layers.blur_pool import binomial_filter
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
