import numpy as np

from keras_drn.layers import GlobalContext
from tests.helpers import random_input, run_layer_test, to_numpy


def test_standard_checks(tmp_path):
    run_layer_test(GlobalContext, {"scale_init": 10.0}, (2, 5, 6, 4), (2, 5, 6, 8), tmp_path)


def test_local_and_tiled_global_features():
    x = random_input((2, 5, 6, 4))
    y = to_numpy(GlobalContext(scale_init=1.0)(x))
    np.testing.assert_allclose(y[..., :4], x / np.linalg.norm(x, axis=-1, keepdims=True),
                               rtol=1e-5)
    pooled = x.mean(axis=(1, 2))
    pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True)
    np.testing.assert_allclose(y[..., 4:], np.broadcast_to(pooled[:, None, None], x.shape),
                               rtol=1e-5, atol=1e-6)
