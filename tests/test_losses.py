"""keras_drn.losses against plain float64 numpy written from the papers' definitions (loops,
no sorting trick shared with the Keras code: the Lovász extension is evaluated from the set
function Delta_J(M) = |M| / |fg U M| itself), values and gradients (central finite
differences of the numpy reference), the ignore label, jit, mixed precision, serialization."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_drn.losses import (
    DiceLoss,
    FocalLoss,
    LovaszHingeLoss,
    LovaszSoftmaxLoss,
    WeightedSum,
)
from tests.helpers import to_numpy, value_and_gradients

IGNORE = 255


# --------------------------------------------------------------- numpy references (float64)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _class_probabilities(logits):
    """(B, H, W, K): softmax, or (1 - p, p) of one sigmoid logit."""
    if logits.shape[-1] == 1:
        p = _sigmoid(logits[..., 0])
        return np.stack([1 - p, p], axis=-1)
    return _softmax(logits)


def _groups(labels, per_image):
    """Index lists of the valid pixels: one per image, or one for the batch."""
    pixels = [idx for idx in np.ndindex(labels.shape) if labels[idx] != IGNORE]
    if not per_image:
        return [pixels]
    return [[p for p in pixels if p[0] == b] for b in range(labels.shape[0])]


def ref_dice(labels, logits, smooth=1.0):
    probabilities = _class_probabilities(logits)
    classes = [1] if logits.shape[-1] == 1 else range(logits.shape[-1])
    dices = []
    for c in classes:
        intersection = total = 0.0
        for idx in _groups(labels, per_image=False)[0]:
            p, y = probabilities[idx][c], float(labels[idx] == c)
            intersection += p * y
            total += p + y
        dices.append((2 * intersection + smooth) / (total + smooth))
    return 1.0 - np.mean(dices)


def _jaccard_set_loss(selected, foreground):
    """Delta_J(M) = |M| / |fg U M| (Berman et al. Eq. 3), 0 for an empty union."""
    union = len(set(selected) | foreground)
    return len(selected) / union if union else 0.0


def ref_lovasz_extension(errors, is_foreground):
    """sum_i e_pi(i) (Delta({pi_1..pi_i}) - Delta({pi_1..pi_i-1})), errors decreasing (Eq. 9)."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    foreground = {i for i, f in enumerate(is_foreground) if f}
    value, previous = 0.0, 0.0
    for k in range(len(order)):
        current = _jaccard_set_loss(order[: k + 1], foreground)
        value += errors[order[k]] * (current - previous)
        previous = current
    return value


def ref_lovasz_softmax(labels, logits, classes="present", per_image=False):
    probabilities = _class_probabilities(logits)
    count = probabilities.shape[-1]
    results = []
    for pixels in _groups(labels, per_image):
        losses = []
        chosen = range(count) if classes in ("present", "all") else classes
        for c in chosen:
            foreground = [labels[p] == c for p in pixels]
            if classes == "present" and not any(foreground):
                continue
            errors = [abs(float(f) - probabilities[p][c]) for p, f in zip(pixels, foreground)]
            losses.append(ref_lovasz_extension(errors, foreground))
        results.append(np.mean(losses) if losses else 0.0)
    return np.mean(results)


def ref_lovasz_hinge(labels, logits, per_image=True):
    results = []
    for pixels in _groups(labels, per_image):
        foreground = [labels[p] == 1 for p in pixels]
        errors = [max(0.0, 1.0 - logits[p][0] * (1.0 if f else -1.0))
                  for p, f in zip(pixels, foreground)]
        results.append(ref_lovasz_extension(errors, foreground) if pixels else 0.0)
    return np.mean(results)


def ref_focal(labels, logits, gamma=2.0, alpha=None):
    values = []
    for idx in _groups(labels, per_image=False)[0]:
        y = labels[idx]
        if logits.shape[-1] == 1:
            p = _sigmoid(logits[idx][0])
            pt = p if y == 1 else 1 - p
            weight = 1.0 if alpha is None else (alpha if y == 1 else 1 - alpha)
        else:
            pt = _softmax(logits[idx])[y]
            weight = 1.0 if alpha is None else alpha[y]
        values.append(-weight * (1 - pt) ** gamma * np.log(pt))
    return np.mean(values) if values else 0.0


def finite_differences(function, x, step=1e-6):
    gradient = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += step
        down[idx] -= step
        gradient[idx] = (function(up) - function(down)) / (2 * step)
    return gradient


# ------------------------------------------------------------------ backend value and gradient


def value_and_gradient(loss, labels, logits):
    """The loss and d loss / d logits on the current backend, as float64 numpy."""
    labels = ops.convert_to_tensor(labels)
    value, (gradient,) = value_and_gradients(lambda x: loss(labels, x), logits)
    return value, gradient.astype("float64")


def _binary_case(seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, (2, 3, 3))
    labels[0, 1, 1] = labels[1, 0, 2] = IGNORE
    return labels, rng.normal(scale=1.5, size=(2, 3, 3, 1))


def _multi_case(seed=0, classes=3, present=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    labels = rng.choice(present, (2, 3, 3))
    labels[0, 0, 1] = labels[1, 2, 0] = IGNORE
    return labels, rng.normal(scale=1.5, size=(2, 3, 3, classes))


# (id, loss, reference, case): every loss, both kinds of input, the options users choose.
CASES = [
    ("dice", DiceLoss(), ref_dice, _multi_case()),
    ("dice_smooth_0", DiceLoss(smooth=0.0), lambda y, x: ref_dice(y, x, 0.0), _multi_case(2)),
    ("dice_binary", DiceLoss(), ref_dice, _binary_case()),
    ("lovasz_softmax_present", LovaszSoftmaxLoss(), ref_lovasz_softmax,
     _multi_case(3, classes=4, present=(0, 2))),
    ("lovasz_softmax_all_per_image", LovaszSoftmaxLoss(classes="all", per_image=True),
     lambda y, x: ref_lovasz_softmax(y, x, "all", True), _multi_case(4, classes=4,
                                                                      present=(0, 2))),
    ("lovasz_softmax_present_per_image", LovaszSoftmaxLoss(per_image=True),
     lambda y, x: ref_lovasz_softmax(y, x, "present", True), _multi_case(5)),
    ("lovasz_softmax_list", LovaszSoftmaxLoss(classes=[0, 2]),
     lambda y, x: ref_lovasz_softmax(y, x, [0, 2]), _multi_case(6)),
    ("lovasz_softmax_binary", LovaszSoftmaxLoss(), ref_lovasz_softmax, _binary_case(7)),
    ("lovasz_hinge_per_image", LovaszHingeLoss(), ref_lovasz_hinge, _binary_case(8)),
    ("lovasz_hinge_batch", LovaszHingeLoss(per_image=False),
     lambda y, x: ref_lovasz_hinge(y, x, False), _binary_case(9)),
    ("focal", FocalLoss(), ref_focal, _multi_case(10)),
    ("focal_alpha", FocalLoss(alpha=[0.5, 2.0, 1.0], gamma=1.5),
     lambda y, x: ref_focal(y, x, 1.5, [0.5, 2.0, 1.0]), _multi_case(11)),
    ("focal_binary", FocalLoss(alpha=0.25), lambda y, x: ref_focal(y, x, 2.0, 0.25),
     _binary_case(12)),
    ("focal_binary_gamma_0", FocalLoss(gamma=0.0), lambda y, x: ref_focal(y, x, 0.0),
     _binary_case(13)),
]


@pytest.mark.parametrize("loss, reference, case", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_value_and_gradient_match_numpy(loss, reference, case):
    labels, logits = case
    value, gradient = value_and_gradient(loss, labels, logits)
    expected = reference(labels, logits)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    expected_gradient = finite_differences(lambda x: reference(labels, x), logits)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-3, atol=2e-5)
    # Ignored pixels get no gradient at all (the reference drops them, so its is 0 too).
    assert np.all(gradient[labels == IGNORE] == 0)
    assert np.abs(gradient).max() > 0


@pytest.mark.parametrize("loss, case", [(c[1], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_scores_at_ignored_pixels_change_nothing(loss, case):
    labels, logits = case
    value, gradient = value_and_gradient(loss, labels, logits)
    for fill in (40.0, -40.0, np.nan):
        changed = logits.copy()
        changed[labels == IGNORE] = fill
        changed_value, changed_gradient = value_and_gradient(loss, labels, changed)
        assert changed_value == pytest.approx(value, rel=1e-6, abs=1e-7), fill
        np.testing.assert_allclose(changed_gradient, gradient, rtol=1e-5, atol=1e-7)


def test_labels_with_a_channel_axis_and_ignore_class_none():
    labels, logits = _multi_case(20)
    binary_labels, binary_logits = _binary_case(19)
    for loss in (DiceLoss(), LovaszSoftmaxLoss(), FocalLoss(), LovaszHingeLoss()):
        for y, x in ((labels, logits), (binary_labels, binary_logits)):
            if isinstance(loss, LovaszHingeLoss) and x.shape[-1] > 1:
                continue
            assert float(loss(y[..., None], x)) == pytest.approx(float(loss(y, x))), loss.name
    clean = np.where(labels == IGNORE, 1, labels)
    loss = DiceLoss(ignore_class=None)
    assert float(loss(clean, logits)) == pytest.approx(ref_dice(clean, logits), rel=1e-5)


def test_probabilities_give_the_same_losses_as_logits():
    labels, logits = _multi_case(21)
    binary_labels, binary_logits = _binary_case(22)
    probabilities = _softmax(logits)
    binary_probabilities = _sigmoid(binary_logits)
    for cls in (DiceLoss, LovaszSoftmaxLoss, FocalLoss):
        for y, x, p in ((labels, logits, probabilities),
                        (binary_labels, binary_logits, binary_probabilities)):
            assert float(cls(from_logits=False)(y, p)) == pytest.approx(
                float(cls()(y, x)), rel=1e-5, abs=1e-6
            )


def test_focal_with_gamma_0_is_keras_cross_entropy_with_the_ignore_label():
    labels, logits = _multi_case(23)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE)
    assert float(FocalLoss(gamma=0.0)(labels, logits)) == pytest.approx(
        float(keras_loss(labels, logits)), rel=1e-5
    )


def test_focal_sample_weight_weights_images():
    labels, logits = _multi_case(24)
    loss = FocalLoss()
    weighted = float(loss(labels, logits, sample_weight=np.array([1.0, 0.0])))
    valid = labels != IGNORE
    expected = ref_focal(labels[:1], logits[:1]) * valid[0].sum() / valid.sum()
    assert weighted == pytest.approx(expected, rel=1e-5)


def test_an_all_ignored_batch_gives_zero_and_zero_gradient():
    labels, logits = _multi_case(25)
    labels[:] = IGNORE
    for loss in (DiceLoss(), LovaszSoftmaxLoss(), FocalLoss(), LovaszSoftmaxLoss(classes="all")):
        value, gradient = value_and_gradient(loss, labels, logits)
        assert value == 0.0 and np.all(gradient == 0), loss.name
    binary_labels = np.full((2, 3, 3), IGNORE)
    value, gradient = value_and_gradient(LovaszHingeLoss(), binary_labels, logits[..., :1])
    assert value == 0.0 and np.all(gradient == 0)


def test_weighted_sum_adds_weighted_terms_and_passes_sample_weight():
    labels, logits = _binary_case(26)
    loss = WeightedSum([(FocalLoss(gamma=0.0), 1.0), (DiceLoss(), 0.5),
                        (LovaszHingeLoss(), 2.0)])
    expected = (ref_focal(labels, logits, 0.0) + 0.5 * ref_dice(labels, logits)
                + 2.0 * ref_lovasz_hinge(labels, logits))
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="takes no sample_weight"):
        loss(labels, logits, sample_weight=np.ones(2))


def test_mixed_bfloat16_logits_give_float32_losses():
    keras.config.set_dtype_policy("mixed_bfloat16")
    labels, logits = _multi_case(27)
    binary_labels, binary_logits = _binary_case(28)
    for loss, y, x in [(DiceLoss(), labels, logits), (LovaszSoftmaxLoss(), labels, logits),
                       (FocalLoss(), labels, logits),
                       (LovaszHingeLoss(), binary_labels, binary_logits),
                       (WeightedSum([(FocalLoss(), 1.0), (DiceLoss(), 1.0)]), labels, logits)]:
        low = ops.cast(ops.convert_to_tensor(x, "float32"), "bfloat16")
        value = loss(y, low)
        assert keras.backend.standardize_dtype(value.dtype) == "float32", loss.name
        rounded = to_numpy(ops.cast(low, "float32"))
        assert float(value) == pytest.approx(float(loss(y, rounded)), rel=1e-6), loss.name


def _tiny_model(channels):
    inputs = keras.Input((None, None, 2))
    return keras.Model(inputs, keras.layers.Conv2D(channels, 1)(inputs))


@pytest.mark.parametrize("loss, case", [(c[1], c[3]) for c in CASES[::2]],
                         ids=[c[0] for c in CASES[::2]])
def test_compiled_evaluate_matches_eager(loss, case):
    """Inside a jit-compiled evaluate (XLA on TensorFlow and JAX; torch runs eagerly): the
    sort, cumulative sums and "present" masks need no data-dependent Python control flow."""
    labels, logits = case
    model = _tiny_model(logits.shape[-1])
    images = np.random.default_rng(0).normal(size=(*labels.shape, 2)).astype("float32")
    jit = keras.backend.backend() != "torch"
    model.compile(loss=loss, jit_compile=jit)
    compiled = model.evaluate(images, labels, batch_size=len(images), verbose=0)
    eager = float(loss(labels, model.predict(images, verbose=0)))
    assert compiled == pytest.approx(eager, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("loss", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_config_round_trip(loss):
    config = loss.get_config()
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config


def test_compiled_model_with_a_weighted_sum_survives_a_keras_file(tmp_path):
    labels, logits = _multi_case(29)
    loss = WeightedSum([(LovaszSoftmaxLoss(per_image=True), 0.5),
                        (FocalLoss(alpha=[1.0, 2.0, 3.0]), 1.0), (DiceLoss(smooth=0.5), 2.0)])
    model = _tiny_model(3)
    model.compile(optimizer="sgd", loss=loss)
    images = np.random.default_rng(1).normal(size=(*labels.shape, 2)).astype("float32")
    before = model.evaluate(images, labels, batch_size=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.loss) is WeightedSum
    assert loaded.loss.get_config() == loss.get_config()
    assert loaded.evaluate(images, labels, batch_size=2, verbose=0) == pytest.approx(before,
                                                                                     rel=1e-6)


def test_bad_arguments_are_refused_with_the_reason():
    labels, logits = _multi_case(30)
    with pytest.raises(ValueError, match="takes no sample_weight"):
        DiceLoss()(labels, logits, sample_weight=np.ones(2))
    with pytest.raises(ValueError, match="one logit per pixel"):
        LovaszHingeLoss()(labels, logits)
    with pytest.raises(ValueError, match="needs logits"):
        LovaszHingeLoss(from_logits=False)
    with pytest.raises(ValueError, match="classes must be"):
        LovaszSoftmaxLoss(classes="some")
    with pytest.raises(ValueError, match="beyond the 3"):
        LovaszSoftmaxLoss(classes=[0, 3])(labels, logits)
    with pytest.raises(ValueError, match="2 class weights but the scores have 3"):
        FocalLoss(alpha=[1.0, 1.0])(labels, logits)
    with pytest.raises(ValueError, match="alpha must be"):
        FocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="y_pred must be"):
        DiceLoss()(labels, logits[0])
    with pytest.raises(ValueError, match="y_true must be"):
        DiceLoss()(labels[0], logits)
    with pytest.raises(ValueError, match="not a keras.losses.Loss"):
        WeightedSum([("dice", 1.0)])


MIRRORED_CHILD = """
import contextlib, json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from keras_drn.workflows.distribute import data_parallel
from keras_drn.losses import FocalLoss, WeightedSum

rng = np.random.default_rng(0)
x = rng.normal(size=(4, 4, 4, 2)).astype("float32")
y = rng.integers(0, 3, size=(4, 4, 4))
y[:, 0, 0] = 255  # the same number of ignored pixels in each replica's half

def one_step(parallel):
    with data_parallel() if parallel else contextlib.nullcontext():
        inputs = keras.Input((4, 4, 2))
        model = keras.Model(inputs, keras.layers.Conv2D(3, 1, kernel_initializer="ones")(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=WeightedSum([(FocalLoss(), 1.0), (FocalLoss(gamma=0.0), 0.5)]))
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        return [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]

single, mirrored = one_step(False), one_step(True)
print("RESULT " + json.dumps(max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored))))
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="MirroredStrategy: TensorFlow pass")
def test_mirrored_strategy_step_equals_one_device():
    """Two replicas each averaging over the same number of valid pixels: the summed gradients
    of the per-replica losses (divided by the replicas) equal the one-device step; without the
    division the step would be twice as large."""
    root = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", MIRRORED_CHILD], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(lines[-1][len("RESULT "):]) < 1e-5
