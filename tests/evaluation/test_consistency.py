"""Shift consistency on models whose answer is known: exactly equivariant, stride-2,
position-dependent, constant and pixel-reading classifiers."""

import keras
import numpy as np
import pytest

from keras_drn.evaluation.consistency import (
    classification_consistency,
    segmentation_consistency,
    shift_consistency,
)


def _images(count=3, size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(count, size, size, 3)).astype("float32")


def _per_pixel_model():
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))


def test_per_pixel_model_is_exactly_consistent():
    report = segmentation_consistency(_per_pixel_model(), _images())
    assert report.kind == "segmentation" and report.images == 3 and report.max_shift == 8
    assert report.consistency == 1.0
    assert report.per_shift == {d: 1.0 for d in range(1, 9)}
    assert "100.00% of pixels unchanged" in str(report)


def test_stride_two_model_is_consistent_only_under_even_shifts():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.AveragePooling2D(2)(inputs)
    x = keras.layers.Conv2D(4, 1)(x)
    model = keras.Model(inputs, keras.layers.UpSampling2D(2)(x))
    report = segmentation_consistency(model, _images(), shifts=(1, 2, 3, 4), batch_size=2)
    assert report.per_shift[2] == report.per_shift[4] == 1.0
    assert report.per_shift[1] < 0.9 and report.per_shift[3] < 0.9
    assert report.consistency < 1.0


def test_known_fraction_of_a_position_dependent_model():
    def column_parity(images):  # label = parity of the column in the crop: absolute position
        parity = (np.arange(images.shape[2]) % 2).astype("float32")
        scores = np.broadcast_to(parity[None, None, :], images.shape[:3])
        return np.stack([scores, 1 - scores], axis=-1)

    report = segmentation_consistency(column_parity, _images(2))
    assert report.per_shift == {d: float(d % 2 == 0) for d in range(1, 9)}
    assert report.consistency == 0.5


def test_batches_of_different_sizes_pool_their_pixels():
    model = _per_pixel_model()
    batches = [(_images(2, 24), None), _images(1, 40)]
    report = segmentation_consistency(model, batches, shifts=(1, 3))
    assert report.images == 3 and report.consistency == 1.0


def test_classifier_consistency():
    constant = classification_consistency(lambda x: np.tile([[0.0, 1.0, 0.0]], (len(x), 1)),
                                          _images(8), trials=3)
    assert constant.kind == "classification" and constant.consistency == 1.0
    assert constant.images == 8 and "top-1 shift consistency 100.00%" in str(constant)

    def corner_pixel(images):  # reads the top-left pixel: changes with almost every shift
        return images[:, 0, 0, :]

    moving = classification_consistency(corner_pixel, _images(64), max_shift=8, seed=1)
    assert moving.consistency < 0.6
    again = classification_consistency(corner_pixel, _images(64), max_shift=8, seed=1)
    assert again.consistency == moving.consistency  # seeded offsets


def test_shift_consistency_tells_classifiers_from_segmenters():
    segmenter = _per_pixel_model()
    assert shift_consistency(segmenter, _images(2), shifts=(1, 2)).kind == "segmentation"
    inputs = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 1)(inputs))
    classifier = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    report = shift_consistency(classifier, _images(4), shifts=range(1, 5))
    assert report.kind == "classification" and report.max_shift == 4


def test_bad_input_is_named():
    model = _per_pixel_model()
    with pytest.raises(ValueError, match="too small for shifts up to 8"):
        segmentation_consistency(model, _images(1, 16))
    with pytest.raises(ValueError, match="positive ints"):
        segmentation_consistency(model, _images(1), shifts=(0, 2))
    with pytest.raises(ValueError, match=r"\(batch, H, W, channels\)"):
        segmentation_consistency(model, np.zeros((32, 32, 3)))
    with pytest.raises(ValueError, match="must output \\(batch, classes\\)"):
        classification_consistency(model, _images(2))
    with pytest.raises(ValueError, match="needs a keras.Model"):
        shift_consistency(lambda x: x, _images(1))
    inputs = keras.Input((None, None, 3))
    flat = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)[..., 0])
    with pytest.raises(ValueError, match="rank 3"):
        shift_consistency(flat, _images(1))
