"""FocalLoss(gamma=0), the BCE half of the binary recipe, keeps finite gradients where the
sigmoid or softmax saturates (a confident pixel): 0**0's gradient is nan, and one nan pixel
made every weight of a binary segmenter nan after a few steps of a fast learning rate."""

import numpy as np
import pytest

from keras_drn.losses import FocalLoss
from tests.test_losses import value_and_gradient


@pytest.mark.parametrize("channels", [1, 3])
def test_gamma_zero_gradient_is_finite_at_saturated_logits(channels):
    labels = np.array([[[1, 0], [0, 255]]])
    logits = np.zeros((1, 2, 2, channels))
    if channels == 1:
        logits[0, 0, 0, 0], logits[0, 0, 1, 0] = 200.0, -200.0  # both right, saturated
    else:
        logits[0, 0, 0, 1], logits[0, 0, 1, 0] = 200.0, 200.0
    value, gradient = value_and_gradient(FocalLoss(gamma=0.0), labels, logits)
    assert np.isfinite(value) and np.isfinite(gradient).all()
    np.testing.assert_allclose(gradient[0, 0], 0.0, atol=1e-6)  # right and sure: no push
