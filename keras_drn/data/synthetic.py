"""An embedded dataset that needs no download: shapes on textured backgrounds.

Each scene is a textured background (smoothed noise plus stripes of a random frequency and
colour) with one object of a random class: a small disk, a thin line (1 to 3 pixels wide,
the structure that dilated networks keep and strided ones lose) or a square. Scenes are
deterministic given the seed. ``masks`` holds per-pixel class ids (0 is background) and
``labels`` the object's class for classification (``label = class id - 1``).
"""

import numpy as np

CLASS_NAMES = ("background", "disk", "line", "square")


def _background(rng, size):
    yy, xx = np.mgrid[0:size, 0:size].astype("float32") / size
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(2, 6)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    noise = rng.uniform(size=(size // 4 + 1, size // 4 + 1, 3))
    noise = np.kron(noise, np.ones((4, 4, 1)))[:size, :size]
    base = rng.uniform(0.2, 0.6, size=3)
    image = 0.5 * base + 0.25 * stripes[..., None] * rng.uniform(0.3, 1, size=3) + 0.25 * noise
    return image.astype("float32")


def _object_mask(rng, kind, size):
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(0.25 * size, 0.75 * size, size=2)
    if kind == 1:  # disk
        radius = rng.uniform(0.08, 0.16) * size
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    if kind == 2:  # thin line through the centre, 1 to 3 pixels wide
        angle = rng.uniform(0, np.pi)
        width = rng.integers(1, 4)
        distance = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle))
        along = np.abs((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle))
        return (distance <= width / 2) & (along <= rng.uniform(0.25, 0.45) * size)
    half = rng.uniform(0.08, 0.16) * size  # square
    return (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)


def make_scenes(count, size=64, seed=0):
    """Generates ``count`` scenes of ``size x size`` pixels.

    Returns:
        ``(images, masks, labels)``: float32 ``(count, size, size, 3)`` in [0, 1], uint8
        ``(count, size, size)`` class ids, int32 ``(count,)`` object classes 0..2.
    """
    if count < 1 or size < 16:
        raise ValueError(f"Need count >= 1 and size >= 16; received count={count}, size={size}.")
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), "float32")
    masks = np.zeros((count, size, size), "uint8")
    labels = rng.integers(1, len(CLASS_NAMES), size=count)
    for i, kind in enumerate(labels):
        image = _background(rng, size)
        mask = _object_mask(rng, kind, size)
        colour = rng.uniform(0, 1, size=3).astype("float32")
        # Keep the object visible: push its colour away from the local background.
        if np.abs(colour - image[mask].mean(axis=0)).sum() < 0.6:
            colour = 1.0 - colour
        image[mask] = colour
        images[i] = image
        masks[i][mask] = kind
    return images, masks, (labels - 1).astype("int32")


def scene_split(train, val, size=64, seed=0):
    """``train + val`` scenes from one seed, split in that order, as raw RGB on the 0-255 scale
    with the training scenes' per-channel statistics (the recipe of ``keras-drn demo`` and
    ``tools/compare_variants.py``). The statistics are for the model to carry
    (``DRNSegmenter(..., include_preprocessing=True, mean=mean, std=std)``), the images are not normalised.

    Returns:
        ``(x_train, y_train, x_val, y_val, (mean, std))``: float32 images ``(n, size, size,
        3)`` in [0, 255], uint8 masks ``(n, size, size)``, and float32 ``(3,)`` mean and
        standard deviation of the training images on the 0-1 scale.
    """
    images, masks, _ = make_scenes(train + val, size=size, seed=seed)
    mean = images[:train].mean(axis=(0, 1, 2))
    std = images[:train].std(axis=(0, 1, 2))
    images = images * np.float32(255.0)
    return images[:train], masks[:train], images[train:], masks[train:], (mean, std)
