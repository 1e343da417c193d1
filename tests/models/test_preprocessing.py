import keras
import numpy as np
import pytest

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.models.preprocessing import normalization_layer


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_normalisation_is_float32_under_every_policy(policy):
    # Under mixed_bfloat16 a bfloat16 Normalization rounds 0-255 values and the statistics to
    # 8 bits: errors of about 1e-2 in the normalised image, before any convolution.
    keras.config.set_dtype_policy(policy)
    layer = normalization_layer(IMAGENET_MEAN, IMAGENET_STD)
    raw = np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype("float32")
    out = layer(raw)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    expected = (raw / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, atol=2e-6)
