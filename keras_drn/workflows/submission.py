"""Kaggle segmentation submissions: the submission CSV (its layouts, ids written verbatim).
The run-length codec (Kaggle's RLE, its pixel orders) is ``keras_drn.data.rle``, re-exported
here.
"""

import csv
import io
import warnings

from keras_drn.atomic import write_text
from keras_drn.data.rle import (  # noqa: F401  (re-exported: keras_drn.submission's names)
    ORDERS,
    _check_order,
    _is_empty,
    _runs,
    remove_small_components,
    rle_decode,
    rle_encode,
)

# A cell starting with one of these is a formula to a spreadsheet (CSV/formula injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# layout -> header; rows are (image_id, mask) for "image", (image_id, class_id, mask) else.
LAYOUTS = {
    "image": ("ImageId", "EncodedPixels"),  # SIIM-ACR, TGS Salt (id,rle_mask), Carvana
    "image_class": ("ImageId_ClassId", "EncodedPixels"),  # Severstal (first version)
    "image_class_columns": ("ImageId", "ClassId", "EncodedPixels"),  # Severstal (final)
}


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
