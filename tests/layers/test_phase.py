import keras
import numpy as np
import pytest

from keras_drn.layers import DilatedConv2D, DilatedResidualBlock, PhaseToSpace, SpaceToPhase
from keras_drn.layers.dilated_conv import reference_conv
from keras_drn.layers.fused_batch_norm import FusedBatchNormalization
from keras_drn.layers.phase import unsplit_factor
from tests.helpers import random_input, run_layer_test, to_numpy, value_and_gradients


@pytest.mark.parametrize("layer_cls, kwargs, shape, expected", [
    (SpaceToPhase, {"factor": 2}, (2, 8, 6, 3), (8, 4, 3, 3)),
    (PhaseToSpace, {"factor": 2}, (8, 4, 3, 3), (2, 8, 6, 3)),
    # 6 is not a multiple of 4: split by 2, the largest divisor of 4 that divides 8 and 6.
    (SpaceToPhase, {"factor": 4, "fallback": True}, (2, 8, 6, 3), (8, 4, 3, 3)),
    (PhaseToSpace, {"factor": 2, "split": "not_called"}, (8, 4, 3, 3), (2, 8, 6, 3)),
])
def test_standard_checks(layer_cls, kwargs, shape, expected, tmp_path):
    run_layer_test(layer_cls, kwargs, shape, expected, tmp_path)


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


def _levels_5_to_7(strategy):
    """DRN-C/D's levels 5-7 in small: a residual block at dilation 2, one at dilation 4, a
    conv-BN-ReLU at dilation 2 (4 channels), for images of any size. ``"phase"``: the
    rearrangements keras_drn's models place, splits nested (2, then 2 more for dilation 4),
    ``fallback=True``. Input ``(batch, height, width, 3)``, output ``(batch, height, width,
    4)``."""
    phase = strategy == "phase"
    inputs = keras.Input((None, None, 3))
    x, outer, both = inputs, (), ()
    if phase:
        x = SpaceToPhase(2, fallback=True, name="outer")(x)
        outer, both = ("outer",), ("outer", "inner")
    x = DilatedResidualBlock(4, dilation=1 if phase else 2, phase_splits=outer, name="b5")(x)
    if phase:
        x = SpaceToPhase(2, fallback=True, name="inner")(x)
    x = DilatedResidualBlock(4, dilation=1 if phase else 4, phase_splits=both, name="b6")(x)
    if phase:
        x = PhaseToSpace(2, split="inner")(x)
    x = reference_conv(4, 3, dilation=1 if phase else 2, phase_splits=outer, name="c7")(x)
    x = FusedBatchNormalization(momentum=0.5, name="bn7")(x)
    x = keras.layers.ReLU()(x)
    if phase:
        x = PhaseToSpace(2, split="outer")(x)
    return keras.Model(inputs, x, name=strategy)


def _step_deltas(model, x, target):
    """One SGD step (learning rate 1) in training mode: each weight's change, the moving
    statistics' included."""
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = [to_numpy(w) for w in model.weights]
    model.train_on_batch(x, target)
    return [to_numpy(w) - old for w, old in zip(model.weights, before)]


# (map size, factor left unsplit by the outer and the inner split): 1x1 and 2x3 split
# nowhere, 6x10 only once (level 6 then runs at dilation 2 on the factor-2 sub-maps), 61x45
# nowhere (odd), 72x88 and 32x32 fully.
ANY_SIZES = [((1, 1), (2, 2)), ((2, 3), (2, 2)), ((6, 10), (1, 2)), ((61, 45), (2, 2)),
             ((72, 88), (1, 1)), ((32, 32), (1, 1))]


@pytest.mark.parametrize("size, unsplit", ANY_SIZES)
def test_any_size_run_equals_direct(size, unsplit):
    """A run built for any size decides per split, when traced, what the map it sees allows:
    outputs, gradients (input and every weight) and moving statistics equal the direct
    layers'."""
    direct, phase = _levels_5_to_7("direct"), _levels_5_to_7("phase")
    phase.set_weights(direct.get_weights())
    x = random_input((2, *size, 3))
    for training in (False, True):
        expected = to_numpy(direct(x, training=training))
        np.testing.assert_allclose(to_numpy(phase(x, training=training)), expected,
                                   rtol=1e-5, atol=1e-5)
    weights = keras.ops.convert_to_tensor(random_input(expected.shape, seed=2))

    def loss(model):
        return lambda x: keras.ops.sum(keras.ops.multiply(model(x, training=True), weights))

    want_value, want = value_and_gradients(loss(direct), x, direct.trainable_weights)
    got_value, got = value_and_gradients(loss(phase), x, phase.trainable_weights)
    np.testing.assert_allclose(got_value, want_value, rtol=1e-5, atol=1e-4)
    for name, a, b in zip(["input"] + [w.path for w in direct.trainable_weights], got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(), err_msg=name)
    target = random_input(expected.shape, seed=1)
    for w, a, b in zip(direct.weights, _step_deltas(phase, x, target),
                       _step_deltas(direct, x, target)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * (np.abs(b).max() + 1e-8),
                                   err_msg=w.path)
    assert (unsplit_factor(["outer"]), unsplit_factor(["inner"])) == unsplit


def test_fallback_splits_by_what_divides_the_size_it_sees():
    x = random_input((2, 6, 10, 3))
    np.testing.assert_array_equal(to_numpy(SpaceToPhase(4, fallback=True)(x)),
                                  to_numpy(SpaceToPhase(2)(x)))
    np.testing.assert_array_equal(to_numpy(SpaceToPhase(2, fallback=True)(x[:, :5])),
                                  x[:, :5])
    # The joining layer follows the split it names (here: unchanged, 5 rows).
    split = SpaceToPhase(2, fallback=True, name="split")
    join = PhaseToSpace(2, split="split")
    np.testing.assert_array_equal(to_numpy(join(split(x[:, :5]))), x[:, :5])
    np.testing.assert_array_equal(to_numpy(join(split(x))), x)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="a TensorFlow SavedModel is traced by TensorFlow")
def test_saved_model_with_unknown_sizes_serves_odd_sizes(tmp_path):
    # Traced with None height and width, every split passes through: the served graph is the
    # direct one, right at any size.
    import tensorflow as tf

    direct, phase = _levels_5_to_7("direct"), _levels_5_to_7("phase")
    phase.set_weights(direct.get_weights())
    path = str(tmp_path / "phase")
    phase.export(path, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(path)
    for size in [(61, 45), (72, 88), (2, 3)]:
        x = random_input((1, *size, 3))
        np.testing.assert_allclose(to_numpy(served.serve(x)), to_numpy(direct(x)),
                                   rtol=1e-5, atol=1e-5)
