import numpy as np
import pytest

from keras_drn.layers import BoundaryRefinement
from tests.helpers import random_input, run_layer_test, to_numpy


def test_standard_checks(tmp_path):
    run_layer_test(BoundaryRefinement, {}, (2, 9, 10, 6), (2, 9, 10, 6), tmp_path)


def test_is_a_residual_of_conv_relu_conv():
    x = random_input((1, 8, 8, 3))
    layer = BoundaryRefinement()
    layer(x)
    kernel1, bias1, kernel2, bias2 = layer.get_weights()
    layer.set_weights([kernel1, bias1, np.zeros_like(kernel2), np.full_like(bias2, 0.5)])
    np.testing.assert_allclose(to_numpy(layer(x)), x + 0.5, rtol=1e-6, atol=1e-6)
    assert kernel1.shape == kernel2.shape == (3, 3, 3, 3)


def test_bad_kernel_size():
    with pytest.raises(ValueError, match="odd"):
        BoundaryRefinement(kernel_size=2)
