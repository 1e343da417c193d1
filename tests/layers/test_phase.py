import keras
import numpy as np
import pytest

from keras_drn.layers import DilatedConv2D, PhaseToSpace, SpaceToPhase
from tests.helpers import random_input, run_layer_test, to_numpy


@pytest.mark.parametrize("layer_cls, shape, expected", [
    (SpaceToPhase, (2, 8, 6, 3), (8, 4, 3, 3)),
    (PhaseToSpace, (8, 4, 3, 3), (2, 8, 6, 3)),
])
def test_standard_checks(layer_cls, shape, expected, tmp_path):
    run_layer_test(layer_cls, {"factor": 2}, shape, expected, tmp_path)


def test_sub_maps_go_phase_major_to_the_front_of_the_batch():
    # Sub-map (i, j) of image b is x[b, i::p, j::p] at batch position (i * p + j) * batch + b;
    # a transposed or batch-major order fails here.
    x = random_input((2, 6, 9, 4))
    y = to_numpy(SpaceToPhase(3)(x))
    assert y.shape == (18, 2, 3, 4)
    for i in range(3):
        for j in range(3):
            for b in range(2):
                np.testing.assert_array_equal(y[(i * 3 + j) * 2 + b], x[b, i::3, j::3])


@pytest.mark.parametrize("factors", [(2,), (4,), (2, 2), (2, 3)])
def test_phase_to_space_undoes_the_splits_in_reverse(factors):
    x = random_input((3, 12, 24, 5))
    y = x
    for factor in factors:
        y = SpaceToPhase(factor)(y)
    for factor in reversed(factors):
        y = PhaseToSpace(factor)(y)
    np.testing.assert_array_equal(to_numpy(y), x)


@pytest.mark.parametrize("dilation, splits", [(2, (2,)), (4, (4,)), (4, (2,)), (4, (2, 2))])
def test_dilated_conv_equals_conv_on_the_phase_sub_maps(dilation, splits):
    """A "same" conv with dilation d = p * q on the map equals one with dilation q on the
    sub-maps of factor p (nested splits included), outputs and training-mode BN."""
    x = random_input((2, 12, 8, 3))
    factor = int(np.prod(splits))
    direct = DilatedConv2D(4, 3, padding="same", dilation_rate=dilation, use_bias=False)
    phase = DilatedConv2D(4, 3, padding="same", dilation_rate=dilation // factor, use_bias=False)
    direct.build(x.shape)
    phase.build(x.shape)
    phase.set_weights(direct.get_weights())
    bn_direct = keras.layers.BatchNormalization(momentum=0.5)
    bn_phase = keras.layers.BatchNormalization(momentum=0.5)
    expected = to_numpy(bn_direct(direct(x), training=True))
    y = x
    for split in splits:
        y = SpaceToPhase(split)(y)
    y = bn_phase(phase(y), training=True)
    for split in reversed(splits):
        y = PhaseToSpace(split)(y)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-5, atol=1e-5)
    # The batch statistics saw the same values: equal moving statistics.
    for a, b in zip(bn_phase.non_trainable_weights, bn_direct.non_trainable_weights):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-6)


def test_sizes_that_are_not_multiples_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"multiples of 2.*5x6.*dilation_strategy='direct'"):
        SpaceToPhase(2)(np.zeros((1, 5, 6, 1), "float32"))


@pytest.mark.parametrize("factor", [0, -2, 1.5, True, "2"])
def test_bad_factor(factor):
    with pytest.raises(ValueError, match="factor must be a positive int"):
        SpaceToPhase(factor)
    with pytest.raises(ValueError, match="factor must be a positive int"):
        PhaseToSpace(factor)
