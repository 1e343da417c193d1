import keras
import numpy as np
import pytest
from PIL import Image

import keras_drn
from keras_drn.evaluation import (
    confusion_matrix,
    dice_per_class,
    evaluate_segmenter,
    iou_per_class,
    iou_table,
    multi_scale_predict,
    segmentation_miou,
)
from tests.helpers import random_input, to_numpy


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


def test_a_prediction_outside_the_classes_is_a_miss_of_the_true_class():
    labels = np.array([0, 0, 1, 1, 1, 255])
    for bad in (2, 255):  # 2 used to land in cell (1, 0); 255 failed to reshape
        predictions = np.array([0, bad, 1, 1, 0, 0])
        with pytest.raises(ValueError, match=f"1 labelled pixel\\(s\\) are predicted {bad}, "
                                             r"outside \[0, 2\): pass misses=True"):
            confusion_matrix(labels, predictions, 2)
        cm = confusion_matrix(labels, predictions, 2, misses=True)
        np.testing.assert_array_equal(cm, [[1, 0, 1], [1, 2, 0]])
        # Cityscapes: class 0 has TP 1, FN 1 (the miss), FP 1; class 1 TP 2, FN 1, FP 0.
        np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 2 / 3])
        np.testing.assert_allclose(dice_per_class(cm), [2 / 4, 4 / 5])
        assert iou_table(cm).splitlines()[-1].split()[-1] == f"{100 * (1 / 3 + 2 / 3) / 2:.2f}"


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


def _symmetric_conv_model(classes=4, seed=0):
    """A conv whose kernel is mirror-symmetric in width, with symmetric "same" padding:
    flipping the input flips the output (flip-equivariant by construction)."""
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(classes, 3, padding="same", name="conv")
    model = keras.Model(inputs, conv(inputs))
    kernel = np.random.default_rng(seed).normal(size=(3, 3, 3, classes)).astype("float32")
    conv.set_weights([kernel + kernel[:, ::-1], np.zeros(classes, "float32")])
    return model


def test_single_scale_without_flip_is_plain_prediction():
    model = _symmetric_conv_model()
    conv = model.get_layer("conv")
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel + np.random.default_rng(1).normal(size=kernel.shape), bias])
    images = random_input((2, 13, 21, 3))
    logits = to_numpy(model.predict_on_batch(images))
    labels = multi_scale_predict(model, images, scales=(1.0,), flip=False)
    np.testing.assert_array_equal(labels, logits.argmax(-1))
    scores = multi_scale_predict(model, images[0], scales=(1.0,), flip=False,
                                 return_scores=True)
    log_probs = logits[0] - np.log(np.exp(logits[0]).sum(-1, keepdims=True))
    np.testing.assert_allclose(scores, log_probs, rtol=1e-5, atol=1e-5)
    # An asymmetric model's flipped prediction is not its prediction: flip adds information.
    flipped = multi_scale_predict(model, images, scales=(1.0,), flip=True, return_scores=True)
    assert np.abs(flipped - 2 * multi_scale_predict(
        model, images, scales=(1.0,), flip=False, return_scores=True)).max() > 1e-2


def test_flip_of_a_flip_equivariant_model_doubles_the_scores():
    model = _symmetric_conv_model()
    images = random_input((2, 11, 16, 3))
    plain = multi_scale_predict(model, images, scales=(1.0, 0.75), flip=False,
                                return_scores=True)
    flipped = multi_scale_predict(model, images, scales=(1.0, 0.75), flip=True,
                                  return_scores=True)
    np.testing.assert_allclose(flipped, 2 * plain, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(
        multi_scale_predict(model, images, scales=(1.0, 0.75)), plain.argmax(-1)
    )


def _log_softmax(x):
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _pil_resize(array, height, width, resample):
    """Resizes each channel of ``(h, w, c)`` float32 with PIL, as segment.py does."""
    return np.stack([
        np.asarray(Image.fromarray(array[..., c], mode="F").resize((width, height), resample))
        for c in range(array.shape[-1])
    ], -1)


def test_multi_scale_reproduces_segment_py_resizing_with_pil():
    """segment.py's test_ms with the image itself as the logits (a model that is the
    identity): PIL bicubic resize of the image to (int(H s), int(W s)), log-softmax, PIL
    bilinear resize back, summed over scales. Half-pixel alignment, sizes, antialiasing."""
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    image = random_input((29, 38, 3))
    scales = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    expected = np.zeros((29, 38, 3), "float32")
    for scale in scales:
        size = (int(29 * scale), int(38 * scale))
        scaled = _pil_resize(image, *size, Image.BICUBIC)
        expected += _pil_resize(_log_softmax(scaled), 29, 38, Image.BILINEAR)
    ours = multi_scale_predict(model, image, scales=scales, flip=False, return_scores=True)
    assert ours.shape == (29, 38, 3)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(multi_scale_predict(model, image, scales=scales, flip=False),
                                  expected.argmax(-1))


def test_drn_segmenter_multi_scale_at_sizes_not_multiple_of_8():
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=3)
    images = random_input((2, 37, 45, 3))  # and 27 x 33 at scale 0.75
    scores = multi_scale_predict(model, images, scales=(0.75, 1.0), flip=True,
                                 return_scores=True)
    assert scores.shape == (2, 37, 45, 3) and np.all(np.isfinite(scores))
    labels = multi_scale_predict(model, images, scales=(0.75, 1.0), flip=True)
    assert labels.shape == (2, 37, 45) and labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, scores.argmax(-1))
    with pytest.raises(ValueError, match="received shape"):
        multi_scale_predict(model, images[0, :, :, 0])


class _FixedPredictions:
    """Stands for a model: returns one-hot logits of preset predictions, batch by batch."""

    def __init__(self, predictions, classes):
        self.batches = iter(predictions)
        self.classes = classes

    def predict_on_batch(self, images):
        return np.eye(self.classes, dtype="float32")[next(self.batches)] * 4.0


def test_evaluate_segmenter_matches_numpy_on_a_hand_made_case():
    masks = [np.array([[[0, 1], [1, 255]]]), np.array([[[2, 2], [0, 1]]])]
    predictions = [np.array([[[0, 1], [0, 2]]]), np.array([[[2, 1], [0, 1]]])]
    dataset = [(np.zeros((1, 2, 2, 3), "float32"), m[..., None]) for m in masks]
    report = evaluate_segmenter(_FixedPredictions(predictions, 3), dataset, 3,
                                class_names=["a", "b", "c"])
    # Pairs (label, prediction), 255 dropped: (0,0) (1,1) (1,0) (2,2) (2,1) (0,0) (1,1).
    np.testing.assert_array_equal(report.confusion, [[2, 0, 0], [1, 2, 0], [0, 1, 1]])
    np.testing.assert_allclose(report.iou, [2 / 3, 2 / 4, 1 / 2])
    assert report.miou == pytest.approx((2 / 3 + 0.5 + 0.5) / 3)
    assert report.pixel_accuracy == pytest.approx(5 / 7)
    assert str(report).splitlines()[0].split() == ["a", "66.67"]
    assert str(report).splitlines()[-1].split() == ["mIoU", f"{100 * report.miou:.2f}"]
    with pytest.raises(ValueError, match="beyond num_classes=2"):
        evaluate_segmenter(_FixedPredictions(predictions, 3), dataset, 2)


def test_evaluate_segmenter_on_a_tf_data_pipeline_agrees_with_predict():
    tf = pytest.importorskip("tensorflow")
    model = _symmetric_conv_model(classes=3)
    images = random_input((4, 12, 10, 3))
    masks = np.random.default_rng(0).integers(0, 3, size=(4, 12, 10))
    masks[:, :2] = 255
    dataset = tf.data.Dataset.from_tensor_slices((images, masks.astype("uint8"))).batch(2)
    report = evaluate_segmenter(model, dataset, 3)
    predictions = to_numpy(model.predict_on_batch(images)).argmax(-1)
    expected = confusion_matrix(masks, predictions, 3)
    np.testing.assert_array_equal(report.confusion, expected)
    assert report.miou == pytest.approx(np.nanmean(iou_per_class(expected)))
    multi = evaluate_segmenter(model, dataset, 3, scales=(1.0, 1.5), flip=True)
    assert multi.confusion.sum() == expected.sum() == 4 * 10 * 10


def test_binary_models_are_scored_by_threshold_with_dice():
    import keras

    from keras_drn.evaluation import evaluate_segmenter, multi_scale_predict

    inputs = keras.Input((None, None, 3))
    # One logit per pixel: (red - 100) / 100, so object where red exceeds 100.
    logit = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(
        [[[[0.01], [0.0], [0.0]]]]), bias_initializer=keras.initializers.Constant(-1.0))(inputs)
    model = keras.Model(inputs, logit)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 200, (2, 6, 5, 3)).astype("float32")
    truth = (rng.uniform(size=(2, 6, 5)) > 0.5).astype("int64")
    truth[0, 0, 0] = 255  # ignored
    predicted = (images[..., 0] > 100).astype("int64")
    np.testing.assert_array_equal(multi_scale_predict(model, images, scales=(1.0,),
                                                      flip=False), predicted)
    probabilities = 1 / (1 + np.exp(-(images[..., :1] - 100) / 100))
    np.testing.assert_allclose(multi_scale_predict(model, images, scales=(1.0,), flip=False,
                                                   return_scores=True), probabilities,
                               rtol=1e-5, atol=1e-6)
    report = evaluate_segmenter(model, [(images, truth)], 1)
    valid = truth != 255
    tp = np.sum((predicted == 1) & (truth == 1) & valid)
    fp = np.sum((predicted == 1) & (truth == 0) & valid)
    fn = np.sum((predicted == 0) & (truth == 1) & valid)
    assert report.iou[1] == pytest.approx(tp / (tp + fp + fn))
    assert report.dice[1] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert "Dice (object)" in report.table and "background" in report.table
    strict = evaluate_segmenter(model, [(images, truth)], 1, threshold=0.6)  # red > 140.5
    expected = np.sum((images[..., 0] > 140.5) & valid)
    assert strict.confusion[:, 1].sum() == expected < report.confusion[:, 1].sum()


def test_data_whose_masks_are_all_ignore_is_refused_naming_it(tmp_path):
    from keras_drn.data import image_mask_folders, segmentation_pipeline

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        Image.fromarray(np.full((4, 5), 255, np.uint8)).save(tmp_path / "masks" / f"{stem}.png")
    data = image_mask_folders(tmp_path / "images", tmp_path / "masks", num_classes=3)
    batches = segmentation_pipeline(data, batch_size=1, training=False)
    model = _FixedPredictions([np.zeros((1, 4, 5), "int64")] * 4, 3)
    with pytest.raises(ValueError, match=r"^The evaluation data: none of its 2 mask"):
        evaluate_segmenter(model, batches, 3)  # used to give mIoU NaN, without a word
    with pytest.raises(ValueError, match=r"^images: none of its 2 mask\(s\) has a pixel "
                                         r"labelled in \[0, 3\); every pixel is the ignore "
                                         r"label 255.*mIoU would be NaN"):
        evaluate_segmenter(model, batches, 3, name=data.name)
