import keras
import numpy as np
import pytest

from keras_drn.layers import L2NormScale
from tests.helpers import random_input, run_layer_test, to_numpy


def test_standard_checks(tmp_path):
    # 64 channels: a sum of squares long enough for a float16 one to show (MIXED_OPS).
    run_layer_test(L2NormScale, {"scale_init": 10.0}, (2, 5, 6, 64), (2, 5, 6, 64), tmp_path)


def test_normalises_each_position_and_scales_per_channel():
    x = random_input((2, 4, 5, 6))
    layer = L2NormScale()
    y = to_numpy(layer(x))
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 20.0, rtol=1e-5)
    layer.set_weights([np.arange(1, 7, dtype="float32")])
    y = to_numpy(layer(x))
    expected = x / np.linalg.norm(x, axis=-1, keepdims=True) * np.arange(1, 7)
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_zero_vector_stays_finite():
    y = to_numpy(L2NormScale()(np.zeros((1, 2, 2, 4), "float32")))
    assert np.all(y == 0)


def test_float16_large_activations_do_not_overflow():
    x = np.full((1, 3, 3, 512), 300.0, "float32")  # 300**2 * 512 overflows float16
    y = L2NormScale(dtype="mixed_float16")(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    np.testing.assert_allclose(to_numpy(keras.ops.cast(y, "float32")), 20 / np.sqrt(512),
                               rtol=1e-2)


def test_negative_epsilon_is_refused():
    with pytest.raises(ValueError, match="epsilon"):
        L2NormScale(epsilon=-1.0)
