"""A Kaggle-shaped binary segmentation folder: images and a CSV of run-length-encoded masks.

The layout of TGS Salt, SIIM-ACR, Carvana and most binary competitions::

    FOLDER/train.csv     ImageId,EncodedPixels (or id,rle_mask / img,rle_mask ...) + any
                         other columns (a patient id to group folds by, say)
    FOLDER/images/       the images, named <ImageId> or <ImageId>.<extension>
                         (train_images/ or train/ are found too)

An empty ``EncodedPixels`` cell (or SIIM's ``-1``) is an image without the object; several
rows of one image (SIIM's one row per region) are the union of their masks. Masks are decoded
by ``keras_drn.workflows.submission.rle_decode`` at the size of their image, in the competition's pixel
order (``"F"``, column-major, Kaggle's usual; or ``"C"``). See ``keras_drn.workflows.submission`` for
the encoding.
"""

import csv
import os

import numpy as np
import tensorflow as tf

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.data.checks import DataError, image_sizes, problem_report
from keras_drn.data.files import list_images
from keras_drn.data.images import read_image
from keras_drn.data.rle import ORDERS, rle_decode
from keras_drn.data.sources import SegmentationData, _split_part, resized, size_pair

__all__ = ["rle_csv_folder"]

# Header names of the competitions, first match wins (compared without case and spaces).
ID_COLUMNS = ("ImageId", "id", "img", "image_id")
RLE_COLUMNS = ("EncodedPixels", "rle_mask", "rle", "encoded_pixels")
EMPTY_CELLS = ("", "-1")  # "-1": SIIM-ACR's empty mask
_SEPARATOR = "|"  # between the RLEs of one image's rows, for the decoder


def _column(header, candidates, given, path, what):
    normal = {name.strip().lower(): name for name in header}
    if given is not None:
        if given.strip().lower() not in normal:
            raise ValueError(f"{path} has no {what} column {given!r}; its columns: {header}.")
        return normal[given.strip().lower()]
    for candidate in candidates:
        if candidate.lower() in normal:
            return normal[candidate.lower()]
    raise ValueError(f"{path} has no {what} column (one of {list(candidates)}); its columns: "
                     f"{header}. Rename its header to one of those (or pass {what}_column= "
                     "to rle_csv_folder).")


def _image_folder(folder, split):
    for name in ("images", f"{split}_images", split):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(f"{folder!r} has no images/ (nor {split}_images/ or {split}/) "
                            "folder beside its CSV.")


def _image_files(image_dir, ids, csv_path):
    """The file of each id: the file named exactly the id, else the one file whose stem is the
    id (an id naming several files by their stem is ambiguous: refused, naming them)."""
    names, by_stem = set(), {}
    for entry in map(os.path.basename, list_images(image_dir, "image folder", allow_empty=True)):
        names.add(entry)
        by_stem.setdefault(os.path.splitext(entry)[0], []).append(entry)
    files, missing = [], []
    for image_id in ids:
        if image_id in names:
            files.append(os.path.join(image_dir, image_id))
            continue
        entries = by_stem.get(image_id, [])
        if len(entries) > 1:
            raise ValueError(f"The id {image_id!r} of {csv_path!r} matches several files in "
                             f"{image_dir!r}: {entries}. Give the full file name as its id.")
        if entries:
            files.append(os.path.join(image_dir, entries[0]))
        else:
            missing.append(image_id)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(f"{len(missing)} image(s) listed in {csv_path!r} are not in "
                                f"{image_dir!r}: {missing[:5]}{more}.")
    return files


def _decode(path, rles, order):
    path, rles = path.decode(), rles.decode()
    image = read_image(path)
    mask = np.zeros(image.shape[:2], np.uint8)
    for rle in rles.split(_SEPARATOR):
        try:
            mask |= rle_decode(rle, image.shape[:2], order=order)
        except ValueError as error:
            raise ValueError(f"The RLE mask of {path!r} ({image.shape[0]}x{image.shape[1]}): "
                             f"{error}") from None
    return image, mask


def _check(files, encoded, order, what):
    """Every image decodes and every RLE fits its image: all the bad files in one error.
    Returns the images' sizes."""
    sizes, unreadable = image_sizes(files)
    unreadable, problems = dict(unreadable), []
    for path, size, rles in zip(files, sizes, encoded):
        if path in unreadable:
            problems.append((path, unreadable[path]))
        if size is None or not rles:
            continue
        for rle in rles.split(_SEPARATOR):
            try:
                rle_decode(rle, size, order=order)
            except ValueError as error:
                problems.append((path, f"(its RLE mask, at {size[0]}x{size[1]}: {error})"))
                break
    if problems:
        raise DataError(problem_report(problems, what), problems)
    return sizes


def rle_csv_folder(folder, split="train", order="F", class_name="object", id_column=None,
                   rle_column=None, mean=None, std=None, val_fraction=None, seed=0, size=None,
                   check=False):
    """A binary segmentation source (``num_classes=1``) from ``FOLDER/<split>.csv`` and its
    images (module docstring).

    Args:
        folder: the folder.
        split: the CSV's stem (``"train"``: ``train.csv``). Kaggle gives one labelled CSV:
            validate on a held-out fold (``keras-drn train --folds K --fold I``).
        order: ``"F"`` (column-major, default) or ``"C"`` (row-major).
        class_name: the object's name.
        id_column, rle_column: the CSV's image id and RLE columns (default: the first of
            ``ID_COLUMNS`` / ``RLE_COLUMNS`` present, any case).
        mean, std: the normalisation a model of this data should carry (0-1 RGB; default
            ImageNet's).
        val_fraction: hold out this fraction of ``train.csv``'s images (a ``seed``-ed
            permutation, ``keras_drn.data.holdout``) as ``split="val"``; ``split="train"`` is
            the rest. ``None``: ``split`` names the CSV.
        size: int or ``(height, width)``: resize every example (images bilinear, masks
            nearest); ``None`` keeps the files' sizes.
        check: decode every image and RLE now (one ``ValueError`` naming all the bad files)
            instead of when each is read; also sets ``image_size`` when the images share one.

    Returns:
        ``SegmentationData`` with ``num_classes=1``: uint8 ``(H, W, 3)`` images and 0/1 uint8
        ``(H, W)`` masks, one example per image id in the CSV's order, and ``examples``:
        ``"id"``, ``"empty"`` (no RLE) and the CSV's other columns (of an image's first row).

    Raises:
        FileNotFoundError: no CSV, no image folder, or images the CSV lists are missing
            (named). ValueError: no id or RLE column, an id naming several files by its stem, a multi-class CSV, an empty CSV; while
            reading, a malformed RLE or one past its image (named with the file).
    """
    if size is not None:
        size = size_pair(size)
    if order not in ORDERS:
        raise ValueError(f"order must be 'F' (column-major) or 'C' (row-major); received "
                         f"{order!r}.")
    listed = split if val_fraction is None else "train"
    csv_path = os.path.join(folder, f"{listed}.csv")
    if not os.path.isfile(csv_path):
        hint = ("" if split == "train" else " A Kaggle folder has one labelled CSV, "
                "train.csv: give val_fraction=0.2 to hold out a seeded part of it, or "
                "validate on a held-out fold of it (folds=K, fold=I; keras-drn train --folds "
                "K --fold I).")
        raise FileNotFoundError(f"{csv_path!r} does not exist.{hint}")
    with open(csv_path, newline="", encoding="utf-8-sig") as stream:  # a BOM is not a name
        reader = csv.DictReader(stream)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if any(name.strip().lower() in ("classid", "imageid_classid") for name in header):
        raise ValueError(f"{csv_path} has a class column ({header}): it is a multi-class CSV; "
                         "this source reads binary masks (one object class).")
    id_key = _column(header, ID_COLUMNS, id_column, csv_path, "id")
    rle_key = _column(header, RLE_COLUMNS, rle_column, csv_path, "rle")
    if not rows:
        raise ValueError(f"{csv_path} lists no images.")
    others = [name for name in header if name not in (id_key, rle_key)]
    records = {}  # image id -> (its RLEs, the other columns of its first row)
    for row in rows:
        image_id = (row[id_key] or "").strip()
        if not image_id:
            raise ValueError(f"{csv_path} has a row without an image id: {row}.")
        rle = (row[rle_key] or "").strip()
        rles, _ = records.setdefault(image_id, ([], {k.strip(): row[k] for k in others}))
        if rle not in EMPTY_CELLS:
            rles.append(rle)
    ids = tuple(records)
    files = _image_files(_image_folder(folder, listed), ids, csv_path)
    encoded = [_SEPARATOR.join(records[i][0]) for i in ids]
    name = f"{os.path.basename(os.path.normpath(folder))}/{listed}.csv"
    if val_fraction is not None:
        kept = _split_part(len(ids), split, val_fraction, seed, repr(csv_path))
        ids = tuple(ids[i] for i in kept)
        files, encoded = ([items[i] for i in kept] for items in (files, encoded))
        name += f" ({split}: {val_fraction:g} held out, seed {seed})"
    image_size = None
    if check:
        sizes = _check(files, encoded, order, repr(name))
        image_size = sizes[0] if len(set(sizes)) == 1 else None

    def decode(path, rles):
        image, mask = tf.numpy_function(lambda p, r: _decode(p, r, order), [path, rles],
                                        (tf.uint8, tf.uint8))
        image.set_shape([None, None, 3])
        mask.set_shape([None, None])
        return image, mask

    dataset = tf.data.Dataset.from_tensor_slices((files, encoded)).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE)
    examples = {"id": ids, "empty": tuple(not records[i][0] for i in ids)}
    for name in others:  # (a column named "empty" would not replace the RLE's)
        examples.setdefault(name.strip(), tuple(str(records[i][1][name.strip()]) for i in ids))
    data = SegmentationData(
        dataset=dataset, num_classes=1, class_names=(class_name,),
        mean=IMAGENET_MEAN if mean is None else mean,
        std=IMAGENET_STD if std is None else std,
        size=len(ids), name=name, examples=examples, image_size=image_size)
    return data if size is None else resized(data, size)
