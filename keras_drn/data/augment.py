"""The DRN reference's segmentation augmentation as TensorFlow ops, for ``tf.data.Dataset.map``.

Reference: github fyu/drn, ``segment.py`` (training transforms) and ``data_transforms.py``,
applied in this order (Yu, Koltun, Funkhouser, CVPR 2017, training recipe):

1. rotate by an integer angle drawn from ``[-r, r]`` degrees (``RandomRotate``): image bilinear,
   the area rotated in from outside filled by reflection; mask nearest, filled with 255;
2. rescale by a ratio drawn from ``U[1/s, s]`` (``RandomScale``): image Lanczos when shrinking,
   bicubic when enlarging; mask nearest; new size ``int(ratio * H) x int(ratio * W)``;
3. random crop (``RandomCrop``), after padding to the crop size when smaller (image by
   reflection, mask with 255, centred);
4. horizontal flip with probability 0.5.

The reference then applies ``ToTensor`` + ``Normalize`` (``/ 255``, then ``(x - mean) / std``);
here that step belongs to the model (its ``Normalization`` layer named ``"preprocessing"``), so
``augment_pair`` returns RGB on the 0-255 scale. ``normalize`` computes it outside a model, for
the plain ``DRN_*`` backbones, which take normalised inputs.

Image and mask always receive the same random draw, so they stay aligned pixel for pixel.
"Reflection" is the reference's (NumPy ``mode="reflect"``: ``d c b | a b c d | c b a``, edge
pixel not repeated, repeated reflection when the padding exceeds the image).

Why hand-written: keras-cv (0.9.0, its last release; development moved to keras-hub) can move
``segmentation_masks`` with the image, but its rotation fills masks with 0, a real class, not
the ignore label 255, and it is unmaintained; Keras's own preprocessing layers transform one
tensor at a time with one interpolation and fill mode, while image and mask need different
ones under the same random draw.

All randomness comes from stateless ops keyed by an explicit ``seed`` (a shape ``(2,)``
integer tensor): the same seed gives the same augmentation, on any machine and in any
``tf.data`` parallelism.
"""

import math
import operator

import tensorflow as tf

from keras_drn.constants import IGNORE_LABEL

__all__ = ["augment_pair", "crop_pair", "normalize", "rescale_pair", "rotate_pair"]


def normalize(image, mean, std):
    """Scales ``image`` from [0, 255] to [0, 1] and standardises it per channel.

    Args:
        image: ``(..., H, W, 3)`` uint8 (or any numeric dtype on the 0-255 scale).
        mean, std: 3 floats each, on the 0-1 RGB scale (the reference's ``info.json`` values).

    Returns:
        float32 ``(..., H, W, 3)``: ``(image / 255 - mean) / std``.
    """
    image = tf.cast(image, tf.float32) / 255.0
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _reflect_indices(size, before, after):
    """Source indices of a NumPy ``reflect`` padding of an axis of length ``size``."""
    index = tf.range(-before, size + after)
    period = tf.maximum(2 * (size - 1), 1)
    folded = tf.math.floormod(index, period)
    return tf.where(folded < size, folded, period - folded)


def _reflect_pad(image, top, bottom, left, right):
    """Pads ``(H, W, C)`` by reflection, any amount (the reference's ``pad_reflection``)."""
    shape = tf.shape(image)
    image = tf.gather(image, _reflect_indices(shape[0], top, bottom), axis=0)
    return tf.gather(image, _reflect_indices(shape[1], left, right), axis=1)


def _as_pair(value, name):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"{name} must be a positive int or (height, width); received {value!r}.")
    return value


def rotate_pair(image, mask, angle):
    """Rotates image and mask counter-clockwise by ``angle`` degrees about the image centre.

    As the reference's ``RandomRotate`` (PIL ``rotate`` of reflection-padded image and
    255-padded mask, cropped back): the output keeps the input size, the image is sampled
    bilinearly and the corners it brings in from outside are reflections of the image; the mask
    is sampled at the nearest pixel and those corners are 255 (ignored).

    Args:
        image: ``(H, W, 3)`` numeric, 0-255.
        mask: ``(H, W)`` uint8 class ids.
        angle: scalar, degrees (counter-clockwise as displayed).

    Returns:
        ``(image, mask)``: float32 ``(H, W, 3)`` and uint8 ``(H, W)``.
    """
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    theta = tf.cast(angle, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # Output pixel (x, y) samples the input at the inverse rotation of (x, y) about the centre.
    offset_x = centre_x - cos * centre_x + sin * centre_y
    offset_y = centre_y - sin * centre_x - cos * centre_y
    # Reflection-pad the image by as much as the rotated frame reaches outside it, then sample
    # with a constant fill that the margin guarantees is never read.
    margin_y = tf.cast(tf.math.ceil(height / 2 * (1 - cos) + width / 2 * tf.abs(sin)), tf.int32) + 2
    margin_x = tf.cast(tf.math.ceil(width / 2 * (1 - cos) + height / 2 * tf.abs(sin)), tf.int32) + 2
    padded = _reflect_pad(image, margin_y, margin_y, margin_x, margin_x)
    shift_x, shift_y = tf.cast(margin_x, tf.float32), tf.cast(margin_y, tf.float32)
    zero = tf.zeros_like(cos)

    def transform(images, dx, dy, interpolation, fill):
        matrix = tf.stack([cos, -sin, offset_x + dx, sin, cos, offset_y + dy, zero, zero])
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images[None],
            transforms=matrix[None],
            output_shape=shape[:2],
            fill_value=fill,
            interpolation=interpolation,
            fill_mode="CONSTANT",
        )[0]

    image = transform(padded, shift_x, shift_y, "BILINEAR", 0.0)
    mask = transform(mask[..., None], zero, zero, "NEAREST", float(IGNORE_LABEL))[..., 0]
    return image, mask


def rescale_pair(image, mask, ratio):
    """Resizes image and mask to ``int(ratio * H) x int(ratio * W)`` (the reference's
    ``RandomScale`` for a drawn ``ratio``).

    The image is resampled with an antialiased Lanczos-3 filter when shrinking (PIL
    ``ANTIALIAS`` in the reference) and bicubically when enlarging, then clipped to [0, 255];
    the mask with the nearest pixel (half-pixel centres, as PIL).

    Args:
        image: ``(H, W, 3)`` numeric, 0-255.
        mask: ``(H, W)`` uint8 class ids.
        ratio: positive scalar.

    Returns:
        ``(image, mask)``: float32 ``(h, w, 3)`` and uint8 ``(h, w)``, at least 1 x 1.
    """
    image = tf.cast(image, tf.float32)
    ratio = tf.cast(ratio, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    size = tf.maximum(tf.cast(tf.floor(ratio * shape), tf.int32), 1)
    image = tf.cond(
        ratio < 1.0,
        lambda: tf.image.resize(image, size, method="lanczos3", antialias=True),
        lambda: tf.image.resize(image, size, method="bicubic"),
    )
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    return tf.clip_by_value(image, 0.0, 255.0), mask


def crop_pair(image, mask, crop_size, offset=None):
    """Crops image and mask to ``crop_size``, padding first where they are smaller.

    As the reference's ``RandomCrop``: a side shorter than the crop is padded symmetrically
    (``(crop - side) // 2`` before, the rest after), the image by reflection and the mask with
    255 (ignored); then the window at ``offset`` is cut out.

    Args:
        image: ``(H, W, C)``.
        mask: ``(H, W)`` uint8 class ids.
        crop_size: int or ``(height, width)``.
        offset: ``(top, left)`` int32 scalars in the padded image, each in
            ``[0, padded side - crop side]``; default the centred window.

    Returns:
        ``(image, mask)`` of static shapes ``(crop_h, crop_w, C)`` and ``(crop_h, crop_w)``,
        dtypes unchanged.
    """
    crop_height, crop_width = _as_pair(crop_size, "crop_size")
    shape = tf.shape(mask)
    pad_height = tf.maximum(crop_height - shape[0], 0)
    pad_width = tf.maximum(crop_width - shape[1], 0)
    top, left = pad_height // 2, pad_width // 2
    bottom, right = pad_height - top, pad_width - left
    image = _reflect_pad(image, top, bottom, left, right)
    mask = tf.pad(mask, [[top, bottom], [left, right]], constant_values=IGNORE_LABEL)
    free = tf.shape(mask) - [crop_height, crop_width]
    if offset is None:
        offset = (free[0] // 2, free[1] // 2)
    y, x = offset
    image = image[y : y + crop_height, x : x + crop_width]
    mask = mask[y : y + crop_height, x : x + crop_width]
    image.set_shape([crop_height, crop_width, image.shape[-1]])
    mask.set_shape([crop_height, crop_width])
    return image, mask


def augment_pair(image, mask, seed, *, crop_size=None, rotate=10, scale=2.0, flip=True):
    """The reference's training transform of one example, deterministic given ``seed``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` uint8 class ids (255 = ignore).
        seed: shape ``(2,)`` int32/int64 tensor: the stateless random seed of this example.
        crop_size: int or ``(height, width)``; ``None`` skips the crop (output size varies).
        rotate: maximum rotation ``r`` in whole degrees (the reference's ``--random-rotate``,
            10 for DRN-D-105); 0 turns rotation off.
        scale: maximum scale ``s`` >= 1 (``--random-scale``, 2 for DRN-D-105); 1 turns it off.
        flip: horizontal flip with probability 0.5.

    Returns:
        ``(image, mask)``: float32 ``(h, w, 3)`` RGB on the 0-255 scale (not normalised),
        int32 ``(h, w)`` (``(h, w)`` = ``crop_size`` when given).
    """
    try:
        valid_rotate = 0 <= operator.index(rotate) <= 180
    except TypeError:
        valid_rotate = False
    if not valid_rotate:
        raise ValueError(f"rotate must be an int number of degrees in [0, 180]; received "
                         f"{rotate!r}.")
    if not scale >= 1:
        raise ValueError(f"scale must be >= 1 (1 turns scaling off); received {scale!r}.")
    angle_seed, ratio_seed, top_seed, left_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 5)
    )
    image = tf.cast(image, tf.float32)
    if rotate:
        angle = tf.random.stateless_uniform(
            [], angle_seed, minval=-rotate, maxval=rotate + 1, dtype=tf.int32
        )
        image, mask = rotate_pair(image, mask, angle)
    if scale != 1:
        ratio = tf.random.stateless_uniform([], ratio_seed, minval=1.0 / scale, maxval=scale)
        image, mask = rescale_pair(image, mask, ratio)
    if crop_size is not None:
        crop_height, crop_width = _as_pair(crop_size, "crop_size")
        shape = tf.shape(mask)
        free_y = tf.maximum(shape[0], crop_height) - crop_height
        free_x = tf.maximum(shape[1], crop_width) - crop_width
        top = tf.random.stateless_uniform([], top_seed, 0, free_y + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform([], left_seed, 0, free_x + 1, dtype=tf.int32)
        image, mask = crop_pair(image, mask, (crop_height, crop_width), offset=(top, left))
    if flip:
        mirrored = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.cond(mirrored, lambda: tf.reverse(image, [1]), lambda: image)
        mask = tf.cond(mirrored, lambda: tf.reverse(mask, [1]), lambda: mask)
    return image, tf.cast(mask, tf.int32)
