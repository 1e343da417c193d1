"""Batched ``tf.data`` input pipelines for segmentation, ready for ``model.fit`` on any backend.

Keras 3 accepts ``tf.data.Dataset`` inputs on the TensorFlow, JAX and PyTorch backends alike
(it converts each batch to the backend's arrays), so one pipeline serves all three; TensorFlow
itself is needed to run it whichever backend trains.

Training follows the DRN reference (github fyu/drn, ``segment.py``): shuffle, then per example
rotate, rescale, crop and flip (``keras_drn.data.augment``), batches of a fixed size (the
reference's loader drops the last partial batch). Evaluation keeps every example as it is.

The batches hold raw RGB on the 0-255 scale, not normalised: the model carries its
normalisation (``DRNSegmenter(..., include_preprocessing=True, mean=data.mean, std=data.std)`` puts a
``Normalization`` layer inside it), so the same model takes training batches, evaluation
batches and image files alike. The reference's ``ToTensor`` + ``Normalize`` happen in that
layer instead of here.
"""

import functools

import tensorflow as tf

from keras_drn.data.augment import augment_pair, crop_pair
from keras_drn.data.sources import SegmentationData

__all__ = ["segmentation_pipeline"]


def segmentation_pipeline(data, batch_size, training, crop_size=None, scale=2.0, rotate=10,
                          flip=True, shuffle_buffer=256, seed=0, repeat=False, cache=False):
    """Turns a ``SegmentationData`` into batches for ``model.fit`` / ``evaluate``.

    Args:
        data: a ``SegmentationData`` (``keras_drn.data.reference_folder``,
            ``image_mask_folders``, ``tfds_dataset``, ``synthetic_scenes``).
        batch_size: examples per batch.
        training: ``True``: shuffle and augment (rotate, scale, crop, flip; the reference's
            order), drop the last partial batch. ``False``: keep every example as it is, no
            shuffling, augmentation arguments ignored.
        crop_size: int or ``(height, width)``. Training: the random crop (images smaller than
            it are padded, image by reflection and mask with 255); needed when
            ``batch_size > 1`` and ``scale != 1``, since rescaled examples differ in size:
            ``None`` then crops to ``data.image_size``, the size its examples share where the
            source knows it (``size=`` resizes any file source to one).
            Evaluation: a centred crop (padded likewise), for quick validation at a fixed
            size; leave it ``None`` to score whole images, with ``batch_size=1`` when their
            sizes differ (batching examples of different sizes fails when it is reached).
        scale: maximum random scale ``s`` (ratio drawn from ``U[1/s, s]``); 1 turns it off.
            The reference's DRN-D-105 recipe uses 2.
        rotate: maximum random rotation in whole degrees; 0 turns it off (DRN-D-105: 10).
        flip: random horizontal flips (p = 0.5).
        shuffle_buffer: examples in the shuffle buffer (training only; 1 or 0 turns shuffling
            off). The buffer holds decoded examples: mind memory with large images
            (a 1024x2048 Cityscapes example is 8 MB).
        seed: seeds the shuffle and the augmentation. Together with TensorFlow's global seed
            (which ``keras.utils.set_random_seed`` sets), it fixes every batch; each pass over
            the dataset draws a new order and new augmentations.
        repeat: repeat forever (then give ``model.fit`` its ``steps_per_epoch``).
        cache: ``True`` caches the decoded source examples in memory, a string caches them in
            files with that prefix; ``False`` re-reads them on every pass.

    Returns:
        A prefetched ``tf.data.Dataset`` of ``(images, masks)``: float32 ``(B, H, W, 3)`` RGB
        on the 0-255 scale (not normalised: give the model ``data.mean`` / ``data.std``),
        int32 ``(B, H, W)`` class ids with 255 = ignore (use ``ignore_class=255`` in the
        loss; ``keras_drn.evaluation`` drops it).
    """
    if not isinstance(data, SegmentationData):
        raise TypeError(f"data must be a SegmentationData (see keras_drn.data sources); "
                        f"received {type(data).__name__}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
    dataset = data.dataset
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    if training:
        if crop_size is None and batch_size > 1 and scale != 1:
            crop_size = data.image_size
        if crop_size is None and batch_size > 1 and scale != 1:
            raise ValueError(
                f"Random scaling (scale={scale!r}) makes examples of different sizes and the "
                f"examples of {data.name} have no one size to crop them to: give crop_size= "
                f"to batch them (batch_size={batch_size}), size= to resize the data to one "
                "size, or batch_size=1."
            )
        if not repeat and data.size < batch_size:
            raise ValueError(f"{data.name} has {data.size} examples, fewer than batch_size="
                             f"{batch_size}: training would yield no batch.")
        if shuffle_buffer > 1:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if training:
        transform = functools.partial(
            augment_pair, crop_size=crop_size, rotate=rotate, scale=scale, flip=flip
        )
        # One stateless seed pair per example; a new stream on every pass over the dataset.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def prepare(example, example_seed):
            image, mask = transform(example[0], example[1], example_seed)
            return _with_shapes(image, mask)

        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            prepare, num_parallel_calls=tf.data.AUTOTUNE
        )
    else:

        def prepare(image, mask):
            if crop_size is not None:
                image, mask = crop_pair(image, mask, crop_size)
            return _with_shapes(tf.cast(image, tf.float32), tf.cast(mask, tf.int32))

        dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _with_shapes(image, mask):
    image.set_shape([None, None, 3])
    mask.set_shape([None, None])
    return image, mask
