"""Colour palettes and side-by-side PNGs of images, ground truth and predictions."""

import os
import tempfile

import numpy as np
from PIL import Image

# Cityscapes-like palette for the first classes, then a deterministic spread; 255 is black.
_BASE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
         (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]


def palette(num_classes):
    """``(256, 3)`` uint8 colours: class ids 0..num_classes-1 distinct, 255 (ignore) black."""
    rng = np.random.default_rng(7)
    colours = np.array(_BASE + [tuple(rng.integers(0, 256, 3)) for _ in range(256 - len(_BASE))],
                       dtype="uint8")
    colours[255] = 0
    return colours[:256]


def colorize(mask, num_classes):
    """Class-id mask ``(H, W)`` -> RGB ``(H, W, 3)`` uint8."""
    return palette(num_classes)[np.asarray(mask, dtype="uint8")]


def to_uint8(image):
    """Float image in [0, 1] (or any range: min-max scaled) -> uint8."""
    image = np.asarray(image, dtype="float32")
    if image.min() < 0 or image.max() > 1:
        image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    return (255 * image).round().astype("uint8")


def save_png(array, path):
    """Writes a uint8 RGB array atomically (temporary file, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".png", dir=directory)
    os.close(handle)
    try:
        Image.fromarray(np.asarray(array, dtype="uint8")).save(temporary, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def comparison_grid(images, labels, predictions, num_classes, scale=4):
    """Rows of [image | ground truth | prediction], upscaled ``scale`` x (nearest)."""
    rows = []
    for image, label, prediction in zip(images, labels, predictions):
        row = np.concatenate(
            [to_uint8(image), colorize(label, num_classes), colorize(prediction, num_classes)],
            axis=1,
        )
        rows.append(np.pad(row, ((2, 2), (0, 0), (0, 0)), constant_values=255))
    grid = np.concatenate(rows, axis=0)
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)
