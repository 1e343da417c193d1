"""segmentation_pipeline: batches of raw 0-255 RGB (the model normalises), shuffling and
augmentation by seed, and model.fit on the backend under test (KERAS_BACKEND) fed by tf.data."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_drn
from keras_drn.data import SegmentationData, segmentation_pipeline, synthetic_scenes

NO_AUGMENTATION = dict(rotate=0, scale=1.0, flip=False)
# Keras's fit says it ignores shuffle=True for a tf.data input: the pipeline shuffles itself.
FIT_WARNING = "ignore:`shuffle=True` was passed:UserWarning"


def _scenes(count, size=32, split="train"):
    return synthetic_scenes(split, count=count, size=size, seed=0)


def _source_images(data):
    return np.stack([image.numpy() for image, _ in data.dataset])


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_training_batches():
    data = _scenes(7)
    batches = _batches(segmentation_pipeline(data, batch_size=2, training=True, crop_size=24))
    assert len(batches) == 3  # the partial last batch is dropped, as the reference's loader
    for images, masks in batches:
        assert images.shape == (2, 24, 24, 3) and images.dtype == np.float32
        assert masks.shape == (2, 24, 24) and masks.dtype == np.int32
        assert set(np.unique(masks)) <= {0, 1, 2, 3, 255}


def test_evaluation_gives_raw_images_and_keeps_every_example():
    data = _scenes(5)
    batches = _batches(segmentation_pipeline(data, batch_size=2, training=False))
    assert [len(images) for images, _ in batches] == [2, 2, 1]
    images = np.concatenate([images for images, _ in batches])
    masks = np.concatenate([masks for _, masks in batches])
    # The source's pixels as float32 on the 0-255 scale, in the source's order: no / 255, no
    # mean / std (the model carries them).
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images, _source_images(data).astype(np.float32))
    np.testing.assert_array_equal(masks, np.stack([m.numpy() for _, m in data.dataset]))


def test_evaluation_centre_crop_pads_masks_with_ignore_label():
    data = _scenes(2, size=16)
    (images, masks), = _batches(segmentation_pipeline(data, 2, False, crop_size=(20, 12)))
    assert images.shape == (2, 20, 12, 3)
    assert np.all(masks[:, :2] == 255) and np.all(masks[:, 18:] == 255)
    source_masks = np.stack([m.numpy() for _, m in data.dataset])
    np.testing.assert_array_equal(masks[:, 2:18], source_masks[:, :, 2:14])


def test_shuffling_is_a_permutation_fixed_by_the_seed():
    data = _scenes(8)
    source = _source_images(data)

    def order(seed, dataset=None):
        if dataset is None:
            dataset = segmentation_pipeline(data, 1, True, seed=seed, **NO_AUGMENTATION)
        images = np.concatenate([x for x, _ in _batches(dataset)])
        return [int(np.argmin(np.abs(source - image).max(axis=(1, 2, 3)))) for image in images]

    first = order(0)
    assert sorted(first) == list(range(8)) and first != list(range(8))
    assert order(0) == first and order(1) != first
    dataset = segmentation_pipeline(data, 1, True, seed=0, **NO_AUGMENTATION)
    assert order(0, dataset) == first and order(0, dataset) != first  # reshuffled per pass


def test_augmentation_is_fixed_by_the_seed_and_new_on_every_pass():
    data = _scenes(4)

    def pipeline(seed):
        return segmentation_pipeline(data, 2, True, crop_size=28, seed=seed, shuffle_buffer=0)

    dataset = pipeline(0)
    first, second = _batches(dataset), _batches(dataset)
    again = _batches(pipeline(0))
    other = _batches(pipeline(1))
    for (x, y), (x_again, y_again) in zip(first, again):
        np.testing.assert_array_equal(x, x_again)
        np.testing.assert_array_equal(y, y_again)
    assert not np.array_equal(first[0][0], second[0][0])
    assert not np.array_equal(first[0][0], other[0][0])


def test_training_batches_are_raw_0_255_rgb():
    """Without augmentation a training batch is the source's pixels (no / 255, no mean / std);
    with it, values stay on the 0-255 scale."""
    data = _scenes(4)
    source = _source_images(data).astype(np.float32)
    dataset = segmentation_pipeline(data, 4, True, shuffle_buffer=0, **NO_AUGMENTATION)
    (images, _), = _batches(dataset)
    np.testing.assert_array_equal(images, source)
    (images, _), = _batches(segmentation_pipeline(data, 4, True, crop_size=24))
    assert 0.0 <= images.min() and images.max() <= 255.0 and images.max() > 100.0


def test_repeat_and_cache():
    data = _scenes(3)
    dataset = segmentation_pipeline(data, 2, True, crop_size=16, repeat=True, cache=True)
    batches = _batches(dataset.take(5))
    assert len(batches) == 5 and all(x.shape == (2, 16, 16, 3) for x, _ in batches)
    evaluation = segmentation_pipeline(data, 3, False, cache=True)
    np.testing.assert_array_equal(_batches(evaluation)[0][0], _batches(evaluation)[0][0])


def test_bad_arguments():
    data = _scenes(3)
    unsized = dataclasses.replace(data, image_size=None)  # examples of unknown sizes
    with pytest.raises(ValueError, match="give crop_size= to batch them.*size= to resize"):
        segmentation_pipeline(unsized, 2, True)
    segmentation_pipeline(data, 1, True)  # one example per batch: any size
    (images, _), = _batches(segmentation_pipeline(data, 2, True, shuffle_buffer=0).take(1))
    assert images.shape == (2, 32, 32, 3)  # cropped to the scenes' size by default
    segmentation_pipeline(data, 2, True, scale=1.0)  # fixed-size scenes, no rescaling
    with pytest.raises(ValueError, match="synthetic/train has 3 examples, fewer than"):
        segmentation_pipeline(data, 4, True, crop_size=8)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        segmentation_pipeline(data, 0, False)
    with pytest.raises(TypeError, match="must be a SegmentationData"):
        segmentation_pipeline(data.dataset, 2, False)
    with pytest.raises(ValueError, match="rotate must be an int"):
        segmentation_pipeline(data, 1, True, rotate=5.5)


@pytest.mark.filterwarnings(FIT_WARNING)
def test_pipeline_feeds_model_fit_on_this_backend():
    """Keras takes tf.data on every backend: a small model trains and evaluates on it."""
    train = segmentation_pipeline(_scenes(8), 4, True, crop_size=24, repeat=True)
    val = segmentation_pipeline(_scenes(4, split="val"), 2, False)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(x))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
    )
    history = model.fit(train, epochs=2, steps_per_epoch=2, validation_data=val, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["val_loss"]))


@pytest.mark.filterwarnings(FIT_WARNING)
def test_drn_segmenter_trains_one_step_from_the_pipeline():
    data = _scenes(4)
    dataset = segmentation_pipeline(data, 2, True, crop_size=32)
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=data.num_classes,
                                   preprocessing=(data.mean, data.std))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
    )
    seg = keras.ops.convert_to_numpy(model.get_layer("seg").kernel)
    history = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(keras.ops.convert_to_numpy(model.get_layer("seg").kernel), seg)


def test_segmentation_data_from_any_dataset():
    """A user's own tf.data source works once wrapped in SegmentationData."""
    images = np.random.default_rng(0).integers(0, 256, (3, 10, 12, 3), dtype=np.uint8)
    masks = np.zeros((3, 10, 12), np.uint8)
    data = SegmentationData(tf.data.Dataset.from_tensor_slices((images, masks)), 2,
                            ("a", "b"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3, "mine")
    (x, y), = _batches(segmentation_pipeline(data, 3, False))
    np.testing.assert_array_equal(x, images.astype(np.float32))
    assert y.dtype == np.int32
