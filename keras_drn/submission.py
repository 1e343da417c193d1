"""Kaggle segmentation submissions: run-length encoding of binary masks, removal of small
connected components, and the submission CSV.

Run-length encoding (RLE), as Kaggle's segmentation competitions score it (TGS Salt,
SIIM-ACR, Carvana, Severstal, HuBMAP): the mask is flattened, in column-major order
(``order="F"``: down the first column first, the default and the most common) or row-major
(``order="C"``), and written as space-separated pairs ``start length`` of its runs of ones,
``start`` counted from 1; an empty mask is the empty string. Check each competition's
evaluation page for its order.
"""

import csv
import io
import math
import numbers
import re
import warnings

import numpy as np

from keras_drn.atomic import write_text

ORDERS = ("F", "C")
# A cell starting with one of these is a formula to a spreadsheet (CSV/formula injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# layout -> header; rows are (image_id, mask) for "image", (image_id, class_id, mask) else.
LAYOUTS = {
    "image": ("ImageId", "EncodedPixels"),  # SIIM-ACR, TGS Salt (id,rle_mask), Carvana
    "image_class": ("ImageId_ClassId", "EncodedPixels"),  # Severstal (first version)
    "image_class_columns": ("ImageId", "ClassId", "EncodedPixels"),  # Severstal (final)
}


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


def _encoded(mask, order):
    if _is_empty(mask):
        return ""
    if isinstance(mask, str):
        if mask.strip():
            _runs(mask)
        return mask.strip()
    return rle_encode(mask, order)


def warn_formula_ids(ids, path):
    """One warning naming the ``ids`` that start like a spreadsheet formula (``=``, ``+``,
    ``-``, ``@``, tab, carriage return) and why they are written as they are: Kaggle scores
    ids exactly, so they are not escaped. Returns those ids."""
    risky = [str(i) for i in ids if str(i).startswith(FORMULA_STARTS)]
    if risky:
        shown = ", ".join(repr(i) for i in risky[:5]) + (
            f" and {len(risky) - 5} more" if len(risky) > 5 else "")
        warnings.warn(
            f"{path}: {len(risky)} id(s) start like a spreadsheet formula ({shown}). They are "
            "written exactly as they are, since Kaggle matches ids verbatim; a spreadsheet "
            "opening this file may run them as formulas: open it as text, or import it with "
            "the id column typed as text.", UserWarning, stacklevel=3)
    return risky


def write_submission(path, rows, layout="image", order="F", columns=None, overwrite=False,
                     option="--submission"):
    """Writes a submission CSV atomically (``keras_drn.atomic``); returns ``path``.

    Args:
        path: the CSV file.
        rows: for ``layout="image"``, ``(image_id, mask)`` pairs, one per image
            (``ImageId,EncodedPixels``); for ``"image_class"``, ``(image_id, class_id,
            mask)`` triples written as ``ImageId_ClassId,EncodedPixels`` with the id
            ``f"{image_id}_{class_id}"``; for ``"image_class_columns"``, the same triples as
            ``ImageId,ClassId,EncodedPixels``. A mask is a binary ``(H, W)`` array (encoded
            with ``order``) or an RLE string written as is; empty masks, ``""``, None and
            NaN (pandas' empty cell) give empty cells.
        layout: one of ``LAYOUTS``.
        order: ``"F"`` (column-major, default) or ``"C"``, for masks given as arrays.
        columns: header names replacing the layout's (as many), for competitions that name
            them otherwise, such as ``("id", "rle_mask")`` (TGS Salt) or ``("img",
            "rle_mask")`` (Carvana).

    A key (image, or image and class) given twice is refused: Kaggle rejects such files.
    An existing ``path`` that keras_drn did not write (a ``train.csv``, an image) is refused
    unless ``overwrite`` (FileExistsError naming ``option``, ``keras_drn.atomic``). Ids that
    start like a spreadsheet formula are written verbatim, with one warning
    (``warn_formula_ids``).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}.")
    _check_order(order)
    header = LAYOUTS[layout]
    if columns is not None:
        columns = tuple(columns)
        if len(columns) != len(header) or not all(isinstance(c, str) and c for c in columns):
            raise ValueError(
                f"columns must be {len(header)} names for layout {layout!r} (default "
                f"{header}), got {columns!r}."
            )
        header = columns
    width = 2 if layout == "image" else 3
    lines, seen = [], set()
    for row in rows:
        if not isinstance(row, (tuple, list)) or len(row) != width:
            raise ValueError(
                f"Layout {layout!r} takes rows of "
                + ("(image_id, mask)" if width == 2 else "(image_id, class_id, mask)")
                + f", got {row!r:.80}."
            )
        *key, mask = row
        key = tuple(str(k) for k in key)
        if key in seen:
            raise ValueError(f"{' class '.join(key)} appears twice in the submission rows.")
        seen.add(key)
        cells = ["_".join(key)] if layout == "image_class" else list(key)
        lines.append([*cells, _encoded(mask, order)])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    written = write_text(path, text.getvalue(), what="submission", overwrite=overwrite,
                         option=option)
    warn_formula_ids([line[0] for line in lines], path)
    return written
