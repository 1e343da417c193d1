"""The one image reader of keras_drn: any image file as uint8 RGB, fully decoded.

Every file the data sources, training, evaluation and prediction read goes through
``read_image``, so an image gives the same pixels wherever it is read. It needs only NumPy and
Pillow (no TensorFlow).

What it does with each kind of file:

- 8-bit RGB: as stored. Grayscale (``L``, ``1``) is repeated to 3 channels; palette images
  (``P``) take their palette colours; an alpha channel (``RGBA``, ``LA``, ``PA``, palette
  transparency) is dropped, not composited; CMYK and YCbCr become RGB as Pillow converts them.
- 16-bit grayscale (Pillow modes ``I;16``, ``I;16B``, ``I;16L``) and 32-bit integer grayscale
  (mode ``I``, whose values are taken as 16-bit, clipped to ``[0, 65535]``): scaled to 8 bits
  by keeping the high byte, ``v >> 8`` (``floor(v / 256)``: 0 -> 0, 65535 -> 255). Pillow's
  own ``convert("RGB")`` clips them instead (every value above 255 becomes 255: a typical
  16-bit picture turns white). The high byte is what ``tf.io.decode_png(..., dtype=tf.uint8)``
  and ``tf.image.decode_image`` give for 16-bit PNGs and what Pillow gives for 16-bit RGB
  PNGs (which it reads as 8-bit ``RGB``, keeping the high byte of each channel), so every
  16-bit file gives the same pixels through every path (a rounded ``v * 255 / 65535`` would
  differ from them by 1 in places).
- 32-bit float (mode ``F``): clipped to ``[0, 255]``, as Pillow converts it.
- Multi-frame files (GIF, TIFF): the first frame.
- EXIF orientation is *not* applied: the pixels are taken as stored, as the DRN reference,
  ``keras.utils.load_img``, torchvision's PIL loader and TensorFlow's decoders take them, so
  that a mask drawn on the stored pixel grid stays aligned with its image. Rotate such photos
  before training if their stored orientation is wrong.

The whole file is decoded on reading (``Image.load``), so a truncated or corrupt file fails
here, with a ``ValueError`` naming it, and not later in a batch (``Image.verify`` passes JPEGs
truncated anywhere after their headers). ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is left as
it is: set it to ``True`` yourself to accept truncated files (their missing part is grey).
"""

import os

import numpy as np
from PIL import Image

__all__ = ["image_problem", "read_image"]

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_rgb(image):
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image)
        if image.mode == "I":
            values = np.clip(values, 0, 65535)
        gray = (values.astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_image(path):
    """Reads an image file as RGB (see the module docstring for each kind of file).

    Args:
        path: ``str``, ``bytes`` (as ``tf.numpy_function`` hands paths over) or a path-like.

    Returns:
        uint8 ``(height, width, 3)`` RGB array.

    Raises:
        ValueError: the file is missing, not an image, truncated or corrupt; the message names
            the file and the reason.
    """
    path = os.fsdecode(path)
    try:
        with Image.open(path) as image:
            image.load()  # the full decode: raises for truncated files, unlike verify()
            return _to_rgb(image)
    except MemoryError:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise ValueError(f"Cannot read the image {path!r}: {type(error).__name__}: {error}. "
                         "Replace or remove the file.") from error


def image_problem(path):
    """Why ``read_image(path)`` fails (``"<error type>: <message>"``), or ``None`` when it
    reads. Decodes the whole file."""
    try:
        read_image(path)
    except ValueError as error:
        cause = error.__cause__
        return f"{type(cause).__name__}: {cause}" if cause is not None else str(error)
    return None
