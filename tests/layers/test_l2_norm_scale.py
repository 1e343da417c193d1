import keras
import numpy as np
import pytest

from keras_drn.layers import L2NormScale
from tests.helpers import MIXED_EPSILON, random_input, run_layer_test, to_numpy


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


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_rounds_only_once(policy):
    # The norm runs in float32 (the docstring), so the only rounding is the final cast to the
    # compute dtype: every output is within half an ulp of the float64 value. Computed in the
    # compute dtype, the squares, the sum, the root, the division and the scale each round
    # again (and float16 squares underflow at 1e-3 and overflow at 300): far off.
    compute = keras.DTypePolicy(policy).compute_dtype
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 3, 2, 2048)) * np.array([1e-3, 1.0, 300.0])[None, :, None, None]
    x = to_numpy(keras.ops.cast(keras.ops.cast(x.astype("float32"), compute), "float32"))
    layer = L2NormScale(dtype=policy)
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == compute
    y = to_numpy(keras.ops.cast(y, "float32")).astype("float64")
    x = x.astype("float64")
    expected = 20.0 * x / np.sqrt(np.sum(x**2, axis=-1, keepdims=True))
    half_ulp = MIXED_EPSILON[policy] / 2
    # Relative half ulp (float32's own error is 1e-7), and half the float16 subnormal spacing
    # for the outputs near zero.
    bound = half_ulp * np.abs(expected) * (1 + 1e-4) + 2.0**-25
    error = np.abs(y - expected)
    worst = np.unravel_index(np.argmax(error / bound), error.shape)
    assert np.all(error <= bound), (
        f"{policy}: {np.mean(error > bound):.1%} of outputs off by more than one rounding; "
        f"worst {y[worst]} vs {expected[worst]} (row {worst[1]})")
