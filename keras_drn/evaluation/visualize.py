"""Colour palettes and pictures of segmentations: side-by-side PNGs of images, ground truth and
predictions, with column titles, a legend of class colours and separators between panels.

Text is drawn with Pillow's ``ImageDraw`` and its default font (no font files needed); files
are written through ``keras_drn.atomic`` like every file keras_drn writes.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_drn.atomic import write_atomically
from keras_drn.constants import IGNORE_LABEL

# Cityscapes-like palette for the first classes, then a deterministic spread; 255 is black.
_BASE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
         (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]
TITLES = ("image", "ground truth", "prediction")
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
SEPARATOR = 4  # pixels of background between panels (mask panels are often black)
_MARGIN = 4  # around the text bands
_SWATCH = 12  # side of a legend colour box


def palette(num_classes):
    """``(256, 3)`` uint8 colours: class ids 0..num_classes-1 distinct, 255 (ignore) black."""
    rng = np.random.default_rng(7)
    colours = np.array(_BASE + [tuple(rng.integers(0, 256, 3)) for _ in range(256 - len(_BASE))],
                       dtype="uint8")
    colours[IGNORE_LABEL] = 0
    return colours[:256]


def colorize(mask, num_classes):
    """Class-id mask ``(H, W)`` -> RGB ``(H, W, 3)`` uint8."""
    return palette(num_classes)[np.asarray(mask, dtype="uint8")]


def to_uint8(image, value_range=1.0):
    """An image ``(H, W, 3)`` as uint8 for display.

    uint8 images are returned as they are. Float images within ``[0, value_range]`` are
    scaled by ``255 / value_range`` and rounded (``value_range=1`` for 0-1 images, ``255``
    for raw 0-255 RGB); float images outside that range (normalised inputs, say) are min-max
    scaled to 0-255.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    image = image.astype("float32")
    if image.min() < 0 or image.max() > value_range:
        image = (image - image.min()) / max(float(image.max() - image.min()), 1e-6)
    else:
        image = image / value_range
    return (255 * image).round().astype("uint8")


def save_png(array, path, overwrite=False, option="--output"):
    """Writes a uint8 RGB (or grayscale) array as a PNG, atomically
    (``keras_drn.atomic.write_atomically``; missing folders are created). An existing file
    that keras_drn did not write is refused (FileExistsError naming ``option``, the flag
    that chose ``path``) unless ``overwrite``."""
    picture = Image.fromarray(np.asarray(array, dtype="uint8"))
    return write_atomically(path, lambda temporary: picture.save(temporary, format="PNG"),
                            what="picture", overwrite=overwrite, option=option)


def _font():
    return ImageFont.load_default()


def _text_size(draw, text, font):
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _legend_entries(labels, num_classes, class_names):
    names = list(class_names) if class_names is not None else [str(i) for i in
                                                                range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for {num_classes} classes: "
                         f"{names!r}.")
    entries = list(enumerate(names))
    if any(np.any(np.asarray(label) == IGNORE_LABEL) for label in labels):
        entries.append((IGNORE_LABEL, f"ignore ({IGNORE_LABEL})"))
    return entries


def _legend_rows(draw, entries, font, width):
    """Lays the legend entries out in rows that fit ``width``: lists of (x, entry)."""
    rows, row, x = [], [], _MARGIN
    for entry in entries:
        extent = _SWATCH + 4 + _text_size(draw, entry[1], font)[0] + 12
        if row and x + extent > width - _MARGIN:
            rows.append(row)
            row, x = [], _MARGIN
        row.append((x, entry))
        x += extent
    rows.append(row)
    return rows


def comparison_grid(images, labels, predictions, num_classes, scale=4, class_names=None,
                    value_range=255.0):
    """A picture of rows [image | ground truth | prediction], upscaled ``scale`` x (nearest),
    with a title over each column, a legend of the class colours under the rows, and
    ``SEPARATOR`` pixels of white between panels.

    Args:
        images: ``(N, H, W, 3)`` RGB: uint8, or floats in ``[0, value_range]`` (see
            ``to_uint8``: floats outside that range are min-max scaled).
        labels, predictions: ``(N, H, W)`` class ids (255 = ignore, drawn black; the legend
            lists it when a label holds it).
        num_classes: number of classes (colours from ``palette``).
        scale: upscaling factor of the panels.
        class_names: ``num_classes`` names for the legend (default: the class ids).
        value_range: the top of the float images' scale: 255 (default) for raw 0-255 RGB, as
            the pipelines yield it; 1 for 0-1 images.

    Returns:
        uint8 ``(height, width, 3)`` picture, ready for ``save_png``.
    """
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    panels = []
    for image, label, prediction in zip(images, labels, predictions):
        row = [to_uint8(image, value_range), colorize(label, num_classes),
               colorize(prediction, num_classes)]
        panels.append([p.repeat(scale, axis=0).repeat(scale, axis=1) for p in row])
    if not panels:
        raise ValueError("comparison_grid needs at least one image.")
    panel_height = max(p[0].shape[0] for p in panels)
    title_sizes = [_text_size(probe, title, font) for title in TITLES]
    columns = [max(max(p[c].shape[1] for p in panels), title_sizes[c][0] + 2 * _MARGIN)
               for c in range(3)]
    width = sum(columns) + SEPARATOR * 4
    title_height = max(h for _, h in title_sizes) + 2 * _MARGIN
    entries = _legend_entries(labels, num_classes, class_names)
    legend_rows = _legend_rows(probe, entries, font, width)
    line = max(_SWATCH, max(_text_size(probe, name, font)[1] for _, name in entries)) + 4
    legend_height = len(legend_rows) * line + 2 * _MARGIN
    rows_top = title_height
    height = rows_top + len(panels) * (panel_height + SEPARATOR) + SEPARATOR + legend_height

    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    lefts = [SEPARATOR + sum(columns[:c]) + SEPARATOR * c for c in range(3)]
    for r, row in enumerate(panels):
        top = rows_top + SEPARATOR + r * (panel_height + SEPARATOR)
        for c, panel in enumerate(row):
            left = lefts[c] + (columns[c] - panel.shape[1]) // 2
            canvas[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for c, title in enumerate(TITLES):
        x = lefts[c] + (columns[c] - title_sizes[c][0]) // 2
        draw.text((x, _MARGIN), title, fill=TEXT, font=font, anchor="lt")
    colours = palette(num_classes)
    legend_top = height - legend_height + _MARGIN
    for i, row in enumerate(legend_rows):
        y = legend_top + i * line
        for x, (class_id, name) in row:
            draw.rectangle([x, y, x + _SWATCH - 1, y + _SWATCH - 1],
                           fill=tuple(int(v) for v in colours[class_id]), outline=TEXT)
            draw.text((x + _SWATCH + 4, y + _SWATCH // 2), name, fill=TEXT, font=font,
                      anchor="lm")
    return np.asarray(picture)
