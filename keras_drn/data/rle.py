"""Run-length encoding of binary masks and removal of small connected components (the codec
of Kaggle's segmentation CSVs; ``keras_drn.workflows.submission`` writes the CSV).

Run-length encoding (RLE), as Kaggle's segmentation competitions score it (TGS Salt,
SIIM-ACR, Carvana, Severstal, HuBMAP): the mask is flattened, in column-major order
(``order="F"``: down the first column first, the default and the most common) or row-major
(``order="C"``), and written as space-separated pairs ``start length`` of its runs of ones,
``start`` counted from 1; an empty mask is the empty string. Check each competition's
evaluation page for its order.
"""

import math
import numbers
import re

import numpy as np

ORDERS = ("F", "C")


def _check_order(order):
    if order not in ORDERS:
        raise ValueError(
            f"order must be 'F' (column-major, Kaggle's usual) or 'C' (row-major), got "
            f"{order!r}."
        )


def _binary_mask(mask):
    """``mask`` as a 2-D bool array; ValueError unless it is 2-D with only 0/1 values."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(
            f"A mask must be 2-D (H, W), got shape {mask.shape}; encode one image and one "
            "class at a time."
        )
    if mask.dtype != bool:
        values = np.unique(mask)
        if not np.isin(values, (0, 1)).all():
            shown = ", ".join(str(v) for v in values[:8]) + (", ..." if values.size > 8 else "")
            raise ValueError(
                f"A mask must be binary (0/1 or bool), got values {shown}; select one class "
                "(mask == class_id) or threshold the probabilities first."
            )
    return mask.astype(bool)


def rle_encode(mask, order="F"):
    """Run-length encoding of a binary ``(H, W)`` mask: ``"start length ..."`` (1-indexed
    starts, in ``order``), ``""`` for an empty mask."""
    _check_order(order)
    flat = _binary_mask(mask).reshape(-1, order=order)
    padded = np.concatenate([[False], flat, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1]) + 1
    starts, ends = changes[0::2], changes[1::2]
    return " ".join(f"{start} {length}" for start, length in zip(starts, ends - starts))


def _is_empty(rle):
    if rle is None:
        return True
    if isinstance(rle, numbers.Real) and not isinstance(rle, bool) and math.isnan(rle):
        return True  # pandas reads an empty EncodedPixels cell as NaN
    return isinstance(rle, str) and not rle.strip()


def _runs(rle):
    """``(starts, lengths)`` int64 arrays of an RLE string; ValueError for a malformed one."""
    if not isinstance(rle, str):
        raise ValueError(f"An RLE must be a string of integers, got {rle!r}.")
    tokens = rle.split()
    for token in tokens:
        if not re.fullmatch(r"-?[0-9]{1,18}", token):
            raise ValueError(f"An RLE holds integers only, got {token!r} in {rle[:60]!r}.")
    if len(tokens) % 2:
        raise ValueError(
            f"An RLE is pairs of 'start length', got an odd number of values ({len(tokens)})."
        )
    values = np.array([int(token) for token in tokens], dtype="int64")
    starts, lengths = values[0::2], values[1::2]
    if (starts < 1).any():
        raise ValueError(
            f"RLE starts count from 1, got start {starts[starts < 1][0]} (a 0-indexed RLE? "
            "add 1 to every start)."
        )
    if (lengths < 1).any():
        raise ValueError(f"RLE run lengths must be >= 1, got {lengths[lengths < 1][0]}.")
    return starts, lengths


def _check_shape(shape):
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape)):
        raise ValueError(f"shape must be (H, W) with positive integers, got {shape!r}.")
    return tuple(int(s) for s in shape)


def rle_decode(rle, shape, order="F"):
    """The ``(H, W)`` uint8 0/1 mask of an RLE string (``""``, None or NaN: empty).

    ValueError, naming the problem, for an odd number of values, a start below 1, a length
    below 1, a run past the ``H * W`` pixels, or runs that overlap.
    """
    _check_order(order)
    shape = _check_shape(shape)
    size = shape[0] * shape[1]
    flat = np.zeros(size, dtype="uint8")
    if _is_empty(rle):
        return flat.reshape(shape, order=order)
    starts, lengths = _runs(rle)
    ends = starts + lengths - 1  # last pixel of each run, 1-indexed
    if (ends > size).any():
        k = int(np.argmax(ends > size))
        raise ValueError(
            f"RLE run {k + 1} (start {starts[k]}, length {lengths[k]}) ends at pixel {ends[k]}, "
            f"beyond the {size} pixels of shape {shape}: wrong shape, or the other order?"
        )
    by_start = np.argsort(starts, kind="stable")
    overlaps = np.flatnonzero(starts[by_start][1:] <= ends[by_start][:-1])
    if overlaps.size:
        first, second = by_start[overlaps[0]], by_start[overlaps[0] + 1]
        raise ValueError(
            f"RLE runs overlap: run {first + 1} (start {starts[first]}, length "
            f"{lengths[first]}) and run {second + 1} (start {starts[second]}, length "
            f"{lengths[second]})."
        )
    for start, length in zip(starts, lengths):
        flat[start - 1:start - 1 + length] = 1
    return flat.reshape(shape, order=order)


def remove_small_components(mask, min_size, connectivity=4):
    """``mask`` without its connected components of fewer than ``min_size`` pixels.

    ``connectivity``: 4 (pixels touching by an edge, the default) or 8 (edges or corners).
    ``mask``: binary ``(H, W)``; returns the same dtype and shape. Labelling by
    ``scipy.ndimage.label`` (scipy comes with JAX; ``pip install scipy`` otherwise), imported
    here so that the RLE functions need numpy alone.
    """
    try:
        from scipy import ndimage
    except ImportError as error:
        raise ImportError(
            "remove_small_components needs scipy (scipy.ndimage.label): pip install scipy."
        ) from error
    binary = _binary_mask(mask)
    if isinstance(min_size, bool) or not isinstance(min_size, numbers.Integral) or min_size < 0:
        raise ValueError(f"min_size must be an integer >= 0 (pixels), got {min_size!r}.")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}.")
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    components, _ = ndimage.label(binary, structure=structure)
    sizes = np.bincount(components.reshape(-1))
    keep = sizes >= min_size
    keep[0] = False
    return keep[components].astype(np.asarray(mask).dtype)
