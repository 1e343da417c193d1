"""Checks of a file dataset before training: every image decodes, every mask pairs with an
image and holds valid class ids at its image's size; all the bad files named in one error.

One pass over the files: the binary masks' convention (``binary_mask_values``) and the check
read each mask once (its facts are kept, keyed by the file's path, size and modification
time), each image is decoded in full once (``read_image``: truncated files fail too). Needs
NumPy and Pillow only.
"""

import concurrent.futures
import functools
import os
import warnings

import numpy as np
from PIL import Image

from keras_drn.constants import IGNORE_LABEL
from keras_drn.data.images import read_image

__all__ = ["BINARY_MASK_VALUES", "DataError", "binary_mask_values", "check_pairs",
           "image_sizes", "problem_report", "readable_images"]

BINARY_MASK_VALUES = ("0/1", "0/255")
SHOWN = 10  # bad files listed in one error; the rest are counted


class DataError(ValueError):
    """Bad files found before training. ``problems`` holds every ``(path, reason)``."""

    def __init__(self, message, problems):
        super().__init__(message)
        self.problems = tuple(problems)


def problem_report(problems, what,
                   advice="Fix or remove them (every file is checked before training)."):
    """One line for ``problems`` (``(path, reason)`` pairs) of the data ``what``: the first
    ``SHOWN`` listed, the others counted, then ``advice``."""
    shown = "; ".join(f"{os.fspath(path)!r} {reason}" for path, reason in problems[:SHOWN])
    more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return f"{len(problems)} bad file(s) in {what}: {shown}{more}. {advice}"


def _mask_array(path):
    """``(array, None)`` of a single-channel mask file, or ``(None, why not)``."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("1", "L", "P", "I", "I;16"):
                return None, (f"has image mode {image.mode!r}; masks must be single-channel "
                              "class-id images (PIL mode L, P (palette indices), I or I;16)")
            return np.asarray(image), None
    except OSError as error:
        return None, f"cannot be read: {error}"


def open_mask(path):
    """The array of a single-channel mask file; ``ValueError`` naming the file otherwise."""
    mask, reason = _mask_array(path)
    if reason is not None:
        raise ValueError(f"Mask {os.fspath(path)!r} {reason}.")
    return mask


@functools.lru_cache(maxsize=1 << 16)
def _mask_facts(path, stamp):
    """``(shape, sorted distinct values, None)`` of a mask, or ``(None, None, why not)``.
    ``stamp`` (size, mtime) keys the cache on the file's version."""
    mask, reason = _mask_array(path)
    if reason is not None:
        return None, None, f"mask {reason}"
    return mask.shape, tuple(np.unique(mask).tolist()), None


def mask_facts(path):
    """Shape, distinct values and read error of a mask file, read once per version of it."""
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except OSError as error:
        return None, None, f"mask cannot be read: {error}"
    return _mask_facts(path, (stat.st_size, stat.st_mtime_ns))


def binary_mask_values(mask_paths, skip_unreadable=False):
    """The convention of a binary dataset's masks, decided from all of them: ``"0/1"`` (1
    object, 255 ignore) when any mask holds a 1, else ``"0/255"`` (255 object). Reads the masks
    until one holds a 1 (all of them for a 0/255 dataset); an unreadable mask raises
    ``ValueError`` naming it, or is passed over with ``skip_unreadable`` (for a caller that
    reports it with the other bad files: ``check_pairs``)."""
    for path in mask_paths:
        _, values, error = mask_facts(path)
        if error is not None:
            if skip_unreadable:
                continue
            raise ValueError(f"{os.fspath(path)!r}: {error}.")
        if 1 in values:
            return "0/1"
    return "0/255"


def valid_labels(num_classes, mask_values=None):
    """``(test, description)``: which mask values are valid for ``num_classes`` (and a binary
    dataset's ``mask_values`` convention)."""
    if num_classes == 1 and mask_values == "0/255":
        return (lambda v: v in (0, 255)), "0/255 (255 = object; mask_values='0/1' reads 0/1)"
    classes = 2 if num_classes == 1 else num_classes
    return ((lambda v: 0 <= v < classes or v == IGNORE_LABEL),
            f"[0, {classes}) or {IGNORE_LABEL} (ignore)")


def _workers():
    return max(1, min(8, os.cpu_count() or 1))


def _image_size(path):
    try:
        return read_image(path).shape[:2], None
    except ValueError as error:
        cause = error.__cause__
        return None, (f"(cannot read the image: {type(cause).__name__}: {cause})"
                      if cause is not None else str(error))


def image_sizes(paths):
    """``(sizes, problems)``: the ``(height, width)`` of each image (decoded in full, on a few
    threads), ``None`` for an unreadable one, whose ``(path, reason)`` is in ``problems``."""
    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        results = list(pool.map(_image_size, paths))
    problems = [(path, reason) for path, (_, reason) in zip(paths, results) if reason]
    return [size for size, _ in results], problems


def readable_images(paths, warn=True):
    """``(readable, unreadable)``: the paths that decode (``read_image``, in full), in their
    order, and ``(path, reason)`` of those that do not. With ``warn``, one ``UserWarning``
    names the unreadable ones (the first ``SHOWN``), for a caller that goes on without them
    (predicting a folder, say)."""
    paths = [os.fspath(p) for p in paths]
    _, unreadable = image_sizes(paths)
    bad = {path for path, _ in unreadable}
    if unreadable and warn:
        warnings.warn(problem_report(unreadable, "the images", "They are skipped."),
                      stacklevel=2)
    return [p for p in paths if p not in bad], unreadable


def check_pairs(image_paths, mask_paths, num_classes, mask_values=None, problems=(),
                what="the data"):
    """Checks every (image, mask) pair: the image decodes, the mask reads as a single-channel
    image of the image's size whose values are valid class ids (``valid_labels``).

    Args:
        image_paths, mask_paths: paired lists.
        num_classes, mask_values: as the sources'; ``mask_values`` is the binary convention
            (``binary_mask_values``, decided beforehand).
        problems: ``(path, reason)`` found before (unpaired files, say), reported with these.
        what: the data's name in the message.

    Returns:
        The ``(height, width)`` of every image.

    Raises:
        DataError: one or more problems, every bad file named in one message (the first
            ``SHOWN``, and how many more).
    """
    problems = list(problems)
    sizes, bad_images = image_sizes(image_paths)
    bad_images = dict(bad_images)
    valid, description = valid_labels(num_classes, mask_values)
    for image_path, image_size, path in zip(image_paths, sizes, mask_paths):
        if image_path in bad_images:
            problems.append((image_path, bad_images[image_path]))
        shape, values, error = mask_facts(path)
        if error is not None:
            problems.append((path, f"({error})"))
            continue
        bad = [v for v in values if not valid(v)]
        if bad:
            problems.append((path, f"(holds label value(s) {bad[:5]} outside {description})"))
        if image_size is not None and tuple(shape) != tuple(image_size):
            problems.append((path, f"(is {shape[0]}x{shape[1]} (height x width), its image "
                                   f"{image_size[0]}x{image_size[1]})"))
    if problems:
        raise DataError(problem_report(problems, what), problems)
    return sizes
