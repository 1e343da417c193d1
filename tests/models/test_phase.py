"""dilation_strategy="phase" against "direct": the same model, the same numbers."""

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.layers import DilatedConv2D, PhaseToSpace, SpaceToPhase
from keras_drn.layers.phase import unsplit_factor
from keras_drn.models.drn import AUTO_DILATION_STRATEGY, resolve_dilation_strategy
from tests.helpers import random_input, to_numpy

# Mixed precision: both strategies round to the low precision at different places (summation
# order), and 20+ layers amplify that; relative to the output's largest value.
MIXED_TOLERANCE = {"mixed_bfloat16": 5e-2}


def _rearrangements(model):
    return [(layer.name, type(layer).__name__, layer.factor) for layer in model.layers
            if isinstance(layer, (SpaceToPhase, PhaseToSpace))]


def _max_dilation(model):
    convs = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, DilatedConv2D)]
    return max(max(conv.dilation_rate) for conv in convs)


def _pair(variant, size, **kwargs):
    # The module fixtures build their pair before the autouse seeding of their first test:
    # without a seed of their own the weights depended on the tests a worker ran before, and
    # one such draw put two DRN-D-22 first-layer gradients 1.2x outside the tolerance on
    # PyTorch (training-mode BatchNormalization over 4x4 maps and a batch of 2 amplifies
    # rounding).
    keras.utils.set_random_seed(0)
    shape = None if size is None else (size, size, 3)
    direct = keras_drn.get_model(variant, include_top=False, input_shape=shape,
                                 dilation_strategy="direct", **kwargs)
    phase = keras_drn.get_model(variant, include_top=False, input_shape=shape,
                                dilation_strategy="phase", **kwargs)
    # Same weights in the same order under the same paths: one loads into the other.
    assert [w.path for w in phase.weights] == [w.path for w in direct.weights]
    phase.set_weights(direct.get_weights())
    return direct, phase


def _train_step(model, x, target):
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = [to_numpy(w) for w in model.weights]
    model.train_on_batch(x, target)
    return [to_numpy(w) - old for w, old in zip(model.weights, before)]


def _check_equal(direct, phase, size, train=True, batch=2):
    """Inference and training-mode outputs; then one SGD step (lr 1: the update is minus the
    gradient) in training mode: the same gradient for every weight and the same
    BatchNormalization moving statistics. ``size``: a side, or ``(height, width)``."""
    height, width = (size, size) if isinstance(size, int) else size
    x = random_input((batch, height, width, 3))
    for training in (False, True):
        expected = to_numpy(direct(x, training=training))
        np.testing.assert_allclose(to_numpy(phase(x, training=training)), expected,
                                   atol=1e-4 * np.abs(expected).max(), rtol=1e-3)
    if not train:
        return
    target = random_input(expected.shape, seed=1)
    for w, got, want in zip(direct.weights, _train_step(phase, x, target),
                            _train_step(direct, x, target)):
        np.testing.assert_allclose(got, want, atol=1e-3 * (np.abs(want).max() + 1e-8),
                                   rtol=1e-3, err_msg=w.path)


# DRN-D-22 with any input size: a 32x32 input gives 4x4 maps at levels 5-7, split fully
# (factor 2 for levels 5 and 7, a further factor 2 for level 6, nested).
D22_REARRANGEMENTS = [("layer5_0_to_phase", "SpaceToPhase", 2),
                      ("layer6_0_to_phase", "SpaceToPhase", 2),
                      ("level6_to_space", "PhaseToSpace", 2),
                      ("level7_to_space", "PhaseToSpace", 2)]


@pytest.fixture(scope="module")
def d22():
    return _pair("drn_d_22", None)


def test_drn_d_phase_equals_direct(d22):
    direct, phase = d22
    # One rearrangement at each end of a run (nested for level 6), no conv left dilated.
    assert _rearrangements(phase) == D22_REARRANGEMENTS
    assert _max_dilation(phase) == 1 and _max_dilation(direct) == 4
    _check_equal(direct, phase, 32)


# (variant, input size, rearrangements, largest dilation left). DRN-C-26 at 48 (not a multiple
# of 32): 6x6 maps, so factor 2 only and level 6 runs at dilation 2 in factor-2 form. DRN-A-18
# at 32: the first block of each dilated stage has dilation 1 and runs directly.
CASES = [
    ("drn_c_26", 48, [("layer5_0_to_phase", "SpaceToPhase", 2),
                      ("level7_to_space", "PhaseToSpace", 2)], 2),
    ("drn_a_18", 32, [("layer3_1_to_phase", "SpaceToPhase", 2),
                      ("level3_to_space", "PhaseToSpace", 2),
                      ("layer4_1_to_phase", "SpaceToPhase", 4),
                      ("level4_to_space", "PhaseToSpace", 4)], 1),
]


@pytest.mark.parametrize("variant, size, rearrangements, max_dilation", CASES)
def test_drn_c_and_a_phase_equal_direct(variant, size, rearrangements, max_dilation):
    direct, phase = _pair(variant, size)
    assert _rearrangements(phase) == rearrangements
    assert _max_dilation(phase) == max_dilation
    _check_equal(direct, phase, size, train=False)


@pytest.mark.slow  # two more training-step compilations per model: DRN-D-22's run everywhere
@pytest.mark.parametrize("variant, size", [case[:2] for case in CASES])
def test_drn_c_and_a_phase_gradients_equal_direct(variant, size):
    # A batch of 4: with 2 images DRN-C-26's 6x6 maps make the float32 gradient ill-conditioned
    # (3e-2 from float64's for either strategy), so any change of summation order shows.
    _check_equal(*_pair(variant, size), size, batch=4)


def test_levels_whose_size_is_not_a_multiple_run_directly():
    # 40x40 input: 5x5 maps at levels 5-7, so no phase form anywhere: the direct model.
    phase = keras_drn.DRN_D_22(include_top=False, input_shape=(40, 40, 3),
                               dilation_strategy="phase")
    assert _rearrangements(phase) == [] and _max_dilation(phase) == 4


@pytest.fixture(scope="module")
def d22_initial():
    """Another any-size DRN-D-22 pair, with its initial weights: each test starts from them
    (an SGD step at learning rate 1 moves both models' weights apart within rounding)."""
    direct, phase = _pair("drn_d_22", None)
    return direct, phase, direct.get_weights()


@pytest.mark.parametrize("size, unsplit", [
    ((1, 1), (2, 2)),  # 1x1 maps at levels 5-7: direct (2x3 and more: tests/layers)
    ((61, 45), (1, 2)),  # 8x6 maps: factor 2, level 6 at dilation 2 in it
    ((72, 88), (2, 2)),  # 9x11 maps: direct (issue 2: "maps 9x11 cannot be split")
])
def test_any_size_model_runs_every_size(d22_initial, size, unsplit):
    # Each split decides when traced, from the map it sees; the layers of its run follow. A
    # batch of 4: with 2, training-mode BatchNormalization over 8x6 maps makes the gradient so
    # ill-conditioned that the direct model alone moved 27% (of the largest update of a
    # weight) when its batch was reversed (PyTorch); with 4 both that and phase moved 2e-4.
    direct, phase, weights = d22_initial
    direct.set_weights(weights)
    phase.set_weights(weights)
    _check_equal(direct, phase, size, batch=4)
    assert (unsplit_factor(["layer5_0_to_phase"]), unsplit_factor(["layer6_0_to_phase"])) \
        == unsplit


@pytest.mark.parametrize("policy", ["mixed_bfloat16"])
def test_phase_equals_direct_in_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    direct, phase = _pair("drn_d_22", 32)
    x = random_input((2, 32, 32, 3))
    for training in (False, True):
        expected = to_numpy(keras.ops.cast(direct(x, training=training), "float32"))
        got = phase(x, training=training)
        assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
        got = to_numpy(keras.ops.cast(got, "float32"))
        assert np.abs(got - expected).max() <= MIXED_TOLERANCE[policy] * np.abs(expected).max()


def test_weights_and_keras_files_move_between_strategies(d22, tmp_path):
    direct, phase = d22
    x = random_input((1, 32, 32, 3))
    expected = to_numpy(phase(x))
    path = str(tmp_path / "phase.weights.h5")
    phase.save_weights(path)
    saved = direct.get_weights()
    direct.set_weights([w * 0.5 for w in saved])
    direct.load_weights(path)
    np.testing.assert_allclose(to_numpy(direct(x)), expected, rtol=1e-5, atol=1e-5)

    path = str(tmp_path / "phase.keras")
    phase.save(path)
    loaded = keras.saving.load_model(path)
    assert _rearrangements(loaded) == D22_REARRANGEMENTS
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, rtol=1e-5, atol=1e-5)
    clone = keras.Model.from_config(phase.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in phase.layers]


def test_feature_maps_are_in_the_normal_layout(d22):
    direct, phase = d22
    x = random_input((1, 32, 64, 3))
    want = keras_drn.feature_model(direct)(x)
    got = keras_drn.feature_model(phase)(x)
    for name in want:  # level5 and level6 are held in phase form inside the phase model
        np.testing.assert_allclose(to_numpy(got[name]), to_numpy(want[name]),
                                   rtol=1e-4, atol=1e-4, err_msg=name)


def test_segmenter_phase_equals_direct():
    direct, phase = (keras_drn.DRNSegmenter("drn_d_22", num_classes=3,
                                            dilation_strategy=strategy)
                     for strategy in ("direct", "phase"))
    phase.set_weights(direct.get_weights())
    assert _rearrangements(phase) == D22_REARRANGEMENTS and not _rearrangements(direct)
    x = random_input((1, 32, 32, 3))
    np.testing.assert_allclose(to_numpy(phase(x)), to_numpy(direct(x)), rtol=1e-4, atol=1e-4)


def test_auto_runs_direct_until_measured_on_a_gpu():
    assert set(AUTO_DILATION_STRATEGY.values()) == {"direct"}
    assert resolve_dilation_strategy("auto") == "direct"
    assert resolve_dilation_strategy("phase") == "phase"


@pytest.mark.parametrize("build", [
    lambda s: keras_drn.DRN_D_22(dilation_strategy=s),
    lambda s: keras_drn.get_model("drn_a_18", dilation_strategy=s),
    lambda s: keras_drn.DRNSegmenter("drn_c_26", dilation_strategy=s),
])
def test_bad_dilation_strategy_names_the_choices(build):
    with pytest.raises(ValueError, match=r"dilation_strategy must be one of \('auto', "
                                         r"'direct', 'phase'\); received .*'dilated'"):
        build("dilated")
