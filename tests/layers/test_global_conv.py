import numpy as np
import pytest

from keras_drn.layers import GlobalConvBlock
from tests.helpers import random_input, run_layer_test, to_numpy


@pytest.mark.parametrize("kernel_size", [3, 7, 15])
def test_standard_checks(kernel_size, tmp_path):
    run_layer_test(GlobalConvBlock, {"filters": 5, "kernel_size": kernel_size},
                   (2, 9, 17, 4), (2, 9, 17, 5), tmp_path)


def test_is_the_sum_of_two_separable_branches():
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    x = random_input((2, 10, 12, 3))
    layer = GlobalConvBlock(4, kernel_size=5)
    ours = to_numpy(layer(x))
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)

    def conv(t, sub):
        kernel, bias = (torch.from_numpy(np.asarray(w)) for w in sub.get_weights())
        kh, kw = kernel.shape[:2]
        return f.conv2d(t, kernel.permute(3, 2, 0, 1), bias, padding=(kh // 2, kw // 2))

    ref = conv(conv(xt, layer.left_1), layer.left_2) + conv(conv(xt, layer.right_1), layer.right_2)
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-4)
    assert [tuple(s.kernel.shape[:2]) for s in (layer.left_1, layer.left_2)] == [(5, 1), (1, 5)]
    assert [tuple(s.kernel.shape[:2]) for s in (layer.right_1, layer.right_2)] == [(1, 5), (5, 1)]


def test_parameter_count_is_linear_in_kernel_size():
    layer = GlobalConvBlock(21, kernel_size=15, use_bias=False)
    layer.build((None, None, None, 64))
    assert layer.count_params() == 2 * (15 * 64 * 21 + 15 * 21 * 21)


@pytest.mark.parametrize("kwargs", [{"filters": 4, "kernel_size": 4}, {"filters": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="must be a positive"):
        GlobalConvBlock(**kwargs)
