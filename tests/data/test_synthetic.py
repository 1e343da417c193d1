import numpy as np
import pytest

import keras_drn.data
from keras_drn.data import CLASS_NAMES, make_scenes, scene_split


def test_scenes_are_deterministic_and_consistent():
    images, masks, labels = make_scenes(24, size=32, seed=3)
    again = make_scenes(24, size=32, seed=3)
    np.testing.assert_array_equal(images, again[0])
    np.testing.assert_array_equal(masks, again[1])
    assert images.shape == (24, 32, 32, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert masks.shape == (24, 32, 32) and labels.shape == (24,)
    # Each scene holds exactly one object, of the labelled class.
    for mask, label in zip(masks, labels):
        assert set(np.unique(mask)) == {0, label + 1}
    assert set(labels) == {0, 1, 2} and len(CLASS_NAMES) == 4
    assert not np.array_equal(images, make_scenes(24, size=32, seed=4)[0])


def test_lines_are_thin():
    _, masks, labels = make_scenes(40, size=64, seed=0)
    for mask, label in zip(masks, labels):
        rows, cols = np.nonzero(mask)
        extent = max(np.ptp(rows), np.ptp(cols)) + 1
        # Area over longest extent: at most width * sqrt(2) for a line 1-3 px wide (diagonal),
        # several times more for disks and squares.
        thinness = len(rows) / extent
        assert (thinness <= 4.5) == (label == 1), (label, thinness)


def test_bad_sizes():
    with pytest.raises(ValueError, match="count >= 1 and size >= 16"):
        make_scenes(0)


def test_scene_split_gives_raw_images_and_the_training_statistics():
    """Raw 0-255 RGB for a model that carries its normalisation, and the statistics of the
    training scenes on the 0-1 scale (the numbers keras-drn demo has always used)."""
    x_train, y_train, x_val, y_val, (mean, std) = scene_split(6, 3, size=16, seed=2)
    images, masks, _ = make_scenes(9, size=16, seed=2)
    assert x_train.shape == (6, 16, 16, 3) and x_val.shape == (3, 16, 16, 3)
    assert x_train.dtype == np.float32 and x_train.max() > 1.0
    np.testing.assert_allclose(np.concatenate([x_train, x_val]), images * 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([y_train, y_val]), masks)
    np.testing.assert_allclose(mean, images[:6].mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(std, images[:6].std(axis=(0, 1, 2)), rtol=1e-6)
    # What the model's Normalization layer computes gives the old normalised inputs back.
    np.testing.assert_allclose((x_val / 255.0 - mean) / std, (images[6:] - mean) / std,
                               atol=1e-5)
    assert not hasattr(keras_drn.data, "normalized_scene_split")


pytestmark = pytest.mark.backend_independent  # no Keras op: CI runs it on TensorFlow only
