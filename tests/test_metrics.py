"""keras_drn.metrics against per-pixel numpy counting loops, on the current backend: eager
accumulation over batches, reset, inside a jit-compiled evaluate, binary from logits and
from probabilities, the ignore label, config round trip."""

import keras
import numpy as np
import pytest

from keras_drn.metrics import DiceScore, IoUScore

IGNORE = 255


def ref_counts(labels, predictions, classes, scored):
    """TP, FP, FN of each class in ``scored``, by a loop over the pixels."""
    counts = {c: [0, 0, 0] for c in scored}
    for label, guess in zip(labels.reshape(-1), predictions.reshape(-1)):
        if label == IGNORE or not 0 <= label < classes:
            continue
        for c in scored:
            counts[c][0] += label == c and guess == c
            counts[c][1] += label != c and guess == c
            counts[c][2] += label == c and guess != c
    return counts


def ref_scores(counts, kind):
    scores = {}
    for c, (tp, fp, fn) in counts.items():
        if tp + fp + fn:
            scores[c] = 2 * tp / (2 * tp + fp + fn) if kind == "dice" else tp / (tp + fp + fn)
        else:
            scores[c] = np.nan
    return scores


def ref_per_image(labels, predictions, classes, scored, kind):
    """Mean over images of each class's score, 1 where the class is neither labelled nor
    predicted in an image."""
    per_image = []
    for image_labels, image_predictions in zip(labels, predictions):
        scores = ref_scores(ref_counts(image_labels, image_predictions, classes, scored), kind)
        per_image.append([1.0 if np.isnan(scores[c]) else scores[c] for c in scored])
    return np.mean(per_image, axis=0)


def _batches(seed, classes, channels, count=3):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        labels = rng.integers(0, classes, (2, 4, 5))
        labels[rng.random(labels.shape) < 0.2] = IGNORE
        yield labels, rng.normal(size=(2, 4, 5, channels)).astype("float32")


METRICS = [("dice", DiceScore), ("iou", IoUScore)]


@pytest.mark.parametrize("kind, cls", METRICS)
def test_multi_class_accumulates_over_batches_like_numpy(kind, cls):
    metric = cls(num_classes=4)
    labels_all, predictions_all = [], []
    for labels, logits in _batches(0, 4, 4):
        metric.update_state(labels, logits)
        labels_all.append(labels)
        predictions_all.append(logits.argmax(-1))
    labels, predictions = np.concatenate(labels_all), np.concatenate(predictions_all)
    expected = ref_scores(ref_counts(labels, predictions, 4, range(4)), kind)
    np.testing.assert_allclose(metric.per_class(), [expected[c] for c in range(4)], rtol=1e-6)
    assert float(metric.result()) == pytest.approx(np.nanmean(list(expected.values())),
                                                   rel=1e-6)
    chosen = cls(num_classes=4, target_class_ids=[1, 3])
    chosen.update_state(labels, np.eye(4)[predictions])
    assert float(chosen.result()) == pytest.approx((expected[1] + expected[3]) / 2, rel=1e-6)
    metric.reset_state()
    metric.update_state(labels[:2], np.eye(4)[predictions[:2]])
    first = ref_scores(ref_counts(labels[:2], predictions[:2], 4, range(4)), kind)
    np.testing.assert_allclose(metric.per_class(), [first[c] for c in range(4)], rtol=1e-6)


@pytest.mark.parametrize("kind, cls", METRICS)
@pytest.mark.parametrize("from_logits", [True, False])
def test_binary_thresholds_the_sigmoid_and_scores_the_foreground(kind, cls, from_logits):
    metric = cls(num_classes=1, from_logits=from_logits, threshold=0.7)
    labels_all, predictions_all = [], []
    for labels, logits in _batches(1, 2, 1):
        probabilities = 1 / (1 + np.exp(-logits[..., 0]))
        metric.update_state(labels[..., None], logits if from_logits else probabilities[..., None])
        labels_all.append(labels)
        predictions_all.append((probabilities > 0.7).astype(int))
    counts = ref_counts(np.concatenate(labels_all), np.concatenate(predictions_all), 2, [1])
    expected = ref_scores(counts, kind)[1]
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(metric.per_class(), [expected], rtol=1e-6)


def test_ignored_and_out_of_range_labels_count_nowhere():
    labels = np.array([[[0, 1, IGNORE, 7]]])
    logits = np.array([[[[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]]]])
    metric = DiceScore(num_classes=2)
    metric.update_state(labels, logits)
    assert float(metric.result()) == 1.0
    np.testing.assert_array_equal(metric.per_class(), [1.0, 1.0])


def test_empty_labels_and_predictions_score_one_and_per_class_nan():
    metric = DiceScore(num_classes=1)
    metric.update_state(np.zeros((1, 2, 2)), np.full((1, 2, 2, 1), -3.0))
    assert float(metric.result()) == 1.0
    assert np.isnan(metric.per_class()).all()
    metric.update_state(np.ones((1, 2, 2)), np.full((1, 2, 2, 1), -3.0))
    assert float(metric.result()) == 0.0


@pytest.mark.parametrize("kind, cls", METRICS)
def test_per_image_scores_average_images_with_empty_pairs_scoring_one(kind, cls):
    multi, binary = cls(num_classes=4, per_image=True), cls(num_classes=1, per_image=True)
    seen = {"multi": ([], []), "binary": ([], [])}
    for (labels, logits), (binary_labels, binary_logits) in zip(_batches(3, 4, 4),
                                                                _batches(4, 2, 1)):
        labels[0, :, 2:] = 3  # class 3 in one image only: absent (score 1) in the others
        binary_labels[1] = 0
        binary_logits[1] = -5.0  # an empty mask predicted empty
        multi.update_state(labels, logits)
        binary.update_state(binary_labels, binary_logits)
        for key, y, p in (("multi", labels, logits.argmax(-1)),
                          ("binary", binary_labels, (binary_logits[..., 0] > 0).astype(int))):
            seen[key][0].append(y)
            seen[key][1].append(p)
    expected = ref_per_image(*map(np.concatenate, seen["multi"]), 4, range(4), kind)
    np.testing.assert_allclose(multi.per_class(), expected, rtol=1e-6)
    assert float(multi.result()) == pytest.approx(expected.mean(), rel=1e-6)
    expected = ref_per_image(*map(np.concatenate, seen["binary"]), 2, [1], kind)
    assert float(binary.result()) == pytest.approx(expected[0], rel=1e-6)
    pooled = cls(num_classes=1)
    for y, p in zip(*seen["binary"]):
        pooled.update_state(y, np.where(p, 5.0, -5.0)[..., None])
    assert float(pooled.result()) != pytest.approx(float(binary.result()))
    multi.reset_state()
    assert np.isnan(multi.per_class()).all()


@pytest.mark.parametrize("kind, cls", METRICS)
def test_inside_compiled_evaluate(kind, cls):
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    jit = keras.backend.backend() != "torch"
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=IGNORE),
                  metrics=[cls(num_classes=3), cls(num_classes=3, per_image=True, name="images")],
                  jit_compile=jit)
    rng = np.random.default_rng(2)
    images = rng.normal(size=(6, 4, 5, 2)).astype("float32")
    labels = rng.integers(0, 3, (6, 4, 5))
    labels[rng.random(labels.shape) < 0.2] = IGNORE
    results = model.evaluate(images, labels, batch_size=2, return_dict=True, verbose=0)
    predictions = model.predict(images, verbose=0).argmax(-1)
    expected = ref_scores(ref_counts(labels, predictions, 3, range(3)), kind)
    assert results[kind] == pytest.approx(np.nanmean(list(expected.values())), rel=1e-5)
    per_image = ref_per_image(labels, predictions, 3, range(3), kind)
    assert results["images"] == pytest.approx(per_image.mean(), rel=1e-5)


@pytest.mark.parametrize("kind, cls", METRICS)
def test_config_round_trip(kind, cls):
    metric = cls(num_classes=5, ignore_class=0, from_logits=False, threshold=0.3,
                 target_class_ids=[1, 2], per_image=True, name="custom")
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(clone) is cls and clone.get_config() == metric.get_config()


def test_bad_arguments_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="num_classes must be"):
        DiceScore(num_classes=0)
    with pytest.raises(ValueError, match="threshold must be"):
        DiceScore(num_classes=1, threshold=1.5)
    with pytest.raises(ValueError, match="target_class_ids"):
        IoUScore(num_classes=1, target_class_ids=[1])
    with pytest.raises(ValueError, match=r"expects y_pred of shape \(batch, H, W, 3\)"):
        DiceScore(num_classes=3).update_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="takes no sample_weight"):
        DiceScore(num_classes=2).update_state(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 2)),
                                              sample_weight=np.ones(1))
