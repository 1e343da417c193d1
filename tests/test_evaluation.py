import numpy as np
import pytest

from keras_drn.evaluation import confusion_matrix, iou_per_class, iou_table, segmentation_miou


def _labels_and_predictions(seed=0, classes=4, shape=(3, 17, 19)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=shape)
    labels[rng.random(shape) < 0.2] = 255
    predictions = np.where(rng.random(shape) < 0.6, labels % classes,
                           rng.integers(0, classes, size=shape))
    return labels, predictions


def test_confusion_matrix_drops_the_ignore_label():
    labels = np.array([0, 1, 1, 255, 2, 7])
    predictions = np.array([0, 1, 0, 1, 2, 2])
    cm = confusion_matrix(labels, predictions, 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(labels, predictions[:3], 3)


def test_iou_matches_the_definition_and_nanmean():
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    ious = iou_per_class(cm)
    np.testing.assert_allclose(ious[:2], [5 / 8, 3 / 6])
    assert np.isnan(ious[2])
    table = iou_table(cm, ["a", "b", "c"])
    assert table.splitlines()[-1].split()[-1] == f"{100 * (5 / 8 + 3 / 6) / 2:.2f}"


def test_keras_mean_iou_metric_agrees_with_numpy_on_this_backend():
    """Keras's MeanIoU with ignore_class has had backend-specific bugs: check ours."""
    classes = 4
    labels, predictions = _labels_and_predictions(classes=classes)
    logits = np.eye(classes, dtype="float32")[predictions] * 5.0
    metric = segmentation_miou(classes)
    metric.update_state(labels[:2], logits[:2])
    metric.update_state(labels[2:], logits[2:])
    expected = np.nanmean(iou_per_class(confusion_matrix(labels, predictions, classes)))
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
