"""Segmentation data sources: where (image, mask) pairs come from, and their statistics.

Every source returns a ``SegmentationData`` whose ``dataset`` yields unbatched pairs:

- image: uint8 ``(H, W, 3)`` RGB, read by ``keras_drn.data.read_image`` (grayscale repeated
  to 3 channels, alpha dropped, not composited, 16-bit files scaled to 8 bits by their high
  byte, the whole file decoded).
- mask: uint8 ``(H, W)`` class ids in ``[0, num_classes)``, or 255 for "ignore"
  (``keras_drn.constants.IGNORE_LABEL``, as the DRN reference).
  Binary mask files (``num_classes=1``) are 0/1 with 255 = ignore, or 0/255 with 255 = the
  object: a dataset's convention is declared (``mask_values=``) or decided from all its masks
  when the source is built ("0/1" when any holds a 1), never from one mask's values.

Files are decoded when the example is read, and checked there: an unreadable or truncated
image, a mask value outside ``[0, num_classes)`` other than 255, or an image and mask of
different sizes, stops the iteration with an error that names the file, the value or both
sizes (raised through ``tf.data`` as ``tf.errors.InvalidArgumentError`` carrying the message).
Empty lists, missing files and folders are reported when the source is built, before anything
is read. With ``check=True`` the file sources check every pair when they are built instead
(``keras_drn.data.checks``: one ``ValueError`` naming all the bad files), as the data specs
of ``keras_drn.data.registry`` do before training.

``size=`` resizes the examples of the file sources (images bilinear, masks nearest);
``val_fraction=`` holds out a seeded part of a folder's training files as its ``"val"``
split, for folders without one.

Feed a source to ``keras_drn.data.segmentation_pipeline`` for batches ready for ``model.fit``.
"""

import dataclasses
import functools
import json
import numbers
import os
import pathlib

import numpy as np
import tensorflow as tf

from keras_drn.constants import (  # the Cityscapes statistics: re-exported here
    CITYSCAPES_MEAN,
    CITYSCAPES_STD,
    IGNORE_LABEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from keras_drn.data.checks import BINARY_MASK_VALUES, DataError, binary_mask_values, check_pairs
from keras_drn.data.checks import open_mask as _open_mask
from keras_drn.data.checks import problem_report
from keras_drn.data.files import files_by_stem
from keras_drn.data.images import read_image
from keras_drn.data.synthetic import CLASS_NAMES as SYNTHETIC_CLASS_NAMES
from keras_drn.data.synthetic import make_scenes

__all__ = [
    "CITYSCAPES_CLASS_NAMES",
    "CITYSCAPES_MEAN",
    "CITYSCAPES_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PET_CLASS_NAMES",
    "SegmentationData",
    "binary_mask_values",
    "folder_mask_values",
    "holdout",
    "image_mask_folders",
    "reference_folder",
    "resized",
    "synthetic_scenes",
    "tfds_dataset",
]

CITYSCAPES_CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
# Cityscapes label id -> train id (cityscapesScripts ``labels.py``); every other id is 255.
_CITYSCAPES_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
_CITYSCAPES_MAX_ID = 33
PET_CLASS_NAMES = ("background", "pet", "border")
# Oxford-IIIT Pet trimap value -> class: 1 pet -> 1, 2 background -> 0, 3 border -> 2.
_PET_CLASSES = {1: 1, 2: 0, 3: 2}

MASK_EXTENSIONS = (".png",)
_SYNTHETIC_COUNTS = {"train": 512, "val": 128}


@dataclasses.dataclass(frozen=True)
class SegmentationData:
    """A segmentation dataset and what a model needs to know about it.

    Attributes:
        dataset: unbatched ``tf.data.Dataset`` of ``(image, mask)``: uint8 ``(H, W, 3)`` RGB
            and uint8 ``(H, W)`` class ids (255 = ignore).
        num_classes: number of classes (mask values ``0 .. num_classes - 1``).
        class_names: ``num_classes`` names.
        mean, std: per-channel statistics on the 0-1 RGB scale: the normalisation a model
            of this data should carry (``DRNSegmenter(..., include_preprocessing=True, mean=mean, std=std)``); the
            pipelines do not apply them.
        size: number of examples.
        name: a short description, for logs.
        examples: per-example facts the source knows without decoding, or ``None``: a dict of
            ``size``-long tuples in the dataset's order: ``"id"`` (str, the file stem or the
            CSV's image id), and where known ``"empty"`` (bool: the mask has no object
            pixel) and a CSV source's other columns (str). K-fold splits use them
            (``keras_drn.workflows.folds``).
        image_size: ``(height, width)`` shared by every example, where the source knows it
            (the synthetic scenes, resized data, checked files of one size), else ``None``:
            a natural training crop (``segmentation_pipeline`` defaults ``crop_size`` to it).
    """

    dataset: tf.data.Dataset
    num_classes: int
    class_names: tuple
    mean: tuple
    std: tuple
    size: int
    name: str
    examples: dict = None
    image_size: tuple = None

    def __post_init__(self):
        if not isinstance(self.num_classes, int) or not 1 <= self.num_classes <= IGNORE_LABEL:
            raise ValueError(f"num_classes must be an int in [1, {IGNORE_LABEL}] "
                             f"({IGNORE_LABEL} is the ignore label); received "
                             f"{self.num_classes!r}.")
        names = tuple(str(n) for n in self.class_names)
        if len(names) != self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes: "
                             f"{names!r}.")
        for field in ("mean", "std"):
            value = getattr(self, field)
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                value = ()
            if len(value) != 3 or (field == "std" and min(value) <= 0):
                raise ValueError(f"{field} must be 3 numbers (RGB, 0-1 scale), std positive; "
                                 f"received {field}={getattr(self, field)!r}.")
            object.__setattr__(self, field, value)
        object.__setattr__(self, "class_names", names)
        if self.examples is not None:
            lengths = {key: len(values) for key, values in self.examples.items()}
            if "id" not in lengths or set(lengths.values()) != {self.size}:
                raise ValueError(f"examples must hold 'id' and {self.size} values per key "
                                 f"(one per example); received lengths {lengths}.")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", size_pair(self.image_size, "image_size"))


def size_pair(size, name="size"):
    """``(height, width)`` of an int or a pair of positive ints; ``ValueError`` otherwise."""
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if (len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair)
            or min(pair) < 1):
        raise ValueError(f"{name} must be a positive int or (height, width); received "
                         f"{name}={size!r}.")
    return tuple(int(v) for v in pair)


def _resize_pair(image, mask, size):
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    image.set_shape([*size, 3])
    mask.set_shape(size)
    return image, mask


def resized(data, size):
    """``data`` with every example resized to ``size`` (int or ``(height, width)``): images
    bilinear (antialiased when shrinking, rounded back to uint8), masks nearest, so class ids
    and 255 (ignore) stay as they are."""
    size = size_pair(size)
    return dataclasses.replace(
        data, dataset=data.dataset.map(lambda image, mask: _resize_pair(image, mask, size),
                                       num_parallel_calls=tf.data.AUTOTUNE),
        image_size=size)


def holdout(count, val_fraction, seed=0, name="the data"):
    """Which of ``count`` examples a seeded split holds out for validation: a bool array with
    ``round(val_fraction * count)`` ``True``, the same for a ``seed`` on every run and machine
    (a NumPy permutation). ``ValueError`` for a fraction outside (0, 1) or an empty part."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not (
            0 < val_fraction < 1):
        raise ValueError(f"val_fraction must be in (0, 1); received val_fraction="
                         f"{val_fraction!r}.")
    val_size = int(round(val_fraction * count))
    if not 1 <= val_size < count:
        raise ValueError(f"val_fraction={val_fraction} of the {count} examples of {name} "
                         "leaves an empty split.")
    held = np.zeros(count, bool)
    held[np.random.default_rng(seed).permutation(count)[:val_size]] = True
    return held


def _split_part(count, split, val_fraction, seed, name):
    """The indices of ``split`` (``"train"`` or ``"val"``) of ``holdout``'s split."""
    if split not in ("train", "val"):
        raise ValueError(f"val_fraction= splits the training files into 'train' and 'val'; "
                         f"received split={split!r}.")
    held = holdout(count, val_fraction, seed, name)
    return [i for i in range(count) if held[i] == (split == "val")]


def folder_mask_values(data_dir, skip_unreadable=False):
    """``binary_mask_values`` over the masks of every split of a folder dataset (an image/mask
    folder's ``<split>/masks/*.png`` or flat ``masks/*.png``, a reference folder's
    ``<split>_labels.txt`` lists), so that its splits, trained or evaluated, read 255 alike: a
    validation split whose masks hold no object pixel takes the training split's convention,
    not one of its own. The masks read here are not read again by the check before training
    (``keras_drn.data.checks``)."""
    data_dir = pathlib.Path(data_dir)
    masks = sorted(path for pattern in ("*/masks/*", "masks/*") for path in data_dir.glob(pattern)
                   if path.suffix.lower() in MASK_EXTENSIONS)
    for listing in sorted(data_dir.glob("*_labels.txt")):
        masks += [data_dir / line for line in _read_list(listing)]
    return binary_mask_values(masks, skip_unreadable)


def _check_mask_values(mask_values, num_classes):
    if mask_values is not None and (num_classes != 1 or mask_values not in BINARY_MASK_VALUES):
        raise ValueError(f"mask_values is for binary masks (num_classes=1): one of "
                         f"{BINARY_MASK_VALUES} or None (decided from all the masks); received "
                         f"mask_values={mask_values!r} with num_classes={num_classes!r}.")


def _read_mask(path, num_classes, mask_values="0/1"):
    """The class ids of a mask file. Binary masks (``num_classes=1``) follow ``mask_values``,
    the dataset's convention: ``"0/1"`` (255 stays ignore) or ``"0/255"`` (255 is the
    object), never decided from one mask's values."""
    mask = _open_mask(path)
    values = np.unique(mask).astype(np.int64)
    if num_classes == 1 and mask_values == "0/255":
        bad = values[(values != 0) & (values != 255)]
        if bad.size:
            raise ValueError(f"Mask {path!r} holds label value {bad[0]}, but this data's binary "
                             "masks are 0/255 (255 = object): give mask_values='0/1' if its "
                             "masks are 0/1 with 255 = ignore.")
        return (mask == 255).astype(np.uint8)
    if num_classes == 1:
        num_classes = 2
    bad = values[((values < 0) | (values >= num_classes)) & (values != IGNORE_LABEL)]
    if bad.size:
        raise ValueError(
            f"Mask {path!r} holds label value {bad[0]}"
            + (f" (all bad values: {bad.tolist()})" if bad.size > 1 else "")
            + f"; labels must be in [0, {num_classes}) or {IGNORE_LABEL} (ignore)."
        )
    return mask.astype(np.uint8)


def _load_pair(image_path, mask_path, num_classes, mask_values):
    image_path, mask_path = image_path.decode(), mask_path.decode()
    image = read_image(image_path)
    mask = _read_mask(mask_path, num_classes, mask_values)
    if image.shape[:2] != mask.shape:
        raise ValueError(
            f"Image {image_path!r} is {image.shape[0]}x{image.shape[1]} (height x width) but "
            f"its mask {mask_path!r} is {mask.shape[0]}x{mask.shape[1]}."
        )
    return image, mask


def _file_dataset(image_paths, mask_paths, num_classes, mask_values=None):
    if num_classes == 1 and mask_values is None:
        mask_values = binary_mask_values(mask_paths)
    load = functools.partial(_load_pair, num_classes=num_classes, mask_values=mask_values)

    def decode(image_path, mask_path):
        image, mask = tf.numpy_function(load, [image_path, mask_path], (tf.uint8, tf.uint8))
        image.set_shape([None, None, 3])
        mask.set_shape([None, None])
        return image, mask

    dataset = tf.data.Dataset.from_tensor_slices((list(image_paths), list(mask_paths)))
    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def _pairs_source(images, masks, ids, num_classes, mask_values, size, check, problems=(),
                  **fields):
    """A ``SegmentationData`` of paired files: checked first with ``check`` (every bad file,
    ``problems`` found before included, in one ``DataError``), resized to ``size``."""
    if size is not None:
        size = size_pair(size)
    _check_mask_values(mask_values, num_classes)
    if problems and not check:
        raise DataError(problem_report(list(problems), repr(fields["name"])), problems)
    if num_classes == 1 and mask_values is None:
        mask_values = binary_mask_values(masks, skip_unreadable=check)
    image_size = None
    if check:
        sizes = check_pairs(images, masks, num_classes, mask_values, problems,
                            what=repr(fields["name"]))
        image_size = sizes[0] if len(set(sizes)) == 1 else None
    data = SegmentationData(dataset=_file_dataset(images, masks, num_classes, mask_values),
                            num_classes=num_classes, size=len(images),
                            examples={"id": tuple(ids)}, image_size=image_size, **fields)
    return data if size is None else resized(data, size)


def _check_files_exist(paths, listed_in):
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(f"{len(missing)} file(s) listed in {listed_in!r} do not exist: "
                                f"{shown}{more}.")


def _read_list(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"File list {path!r} does not exist.")
    with open(path, encoding="utf-8-sig") as handle:
        lines = [line.strip() for line in handle]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"File list {path!r} is empty.")
    return lines


def reference_folder(data_dir, split="train", num_classes=None, mask_values=None,
                     val_fraction=None, seed=0, size=None, check=False):
    """A dataset folder in the DRN reference's format (fyu/drn ``segment.py``, ``SegList``).

    The folder holds ``{split}_images.txt`` and ``{split}_labels.txt`` (one path per line,
    relative to ``data_dir``; labels are PNG class-id images, 255 = ignore) and ``info.json``
    with ``"mean"`` and ``"std"`` (3 floats each, 0-1 RGB). ``info.json`` may also hold
    ``"num_classes"`` (int) and ``"class_names"`` (list of strings); the reference passes the
    class count on the command line instead, hence the argument.

    Args:
        data_dir: the folder.
        split: ``"train"``, ``"val"`` or any name with both list files (the reference's
            ``test`` split has no labels and cannot be used here).
        num_classes: number of classes. Default: ``info.json``'s ``"num_classes"``, else the
            length of its ``"class_names"``; given both ways, they must agree.
        mask_values: binary masks only (``num_classes=1``): ``"0/1"`` (255 = ignore),
            ``"0/255"`` (255 = object), or ``None``: decided from all the split's masks
            (``binary_mask_values``: "0/1" when any mask holds a 1), never per mask, so a
            0/1/255 mask without object pixels keeps its 255 as ignore.
        val_fraction: for a folder without ``val`` lists: the fraction of the ``train`` lists
            held out, by a ``seed``-ed permutation (``holdout``), as the ``"val"`` split;
            ``split="train"`` is the rest.
        seed: the seed of that split.
        size: int or ``(height, width)``: resize every example (images bilinear, masks
            nearest); ``None`` keeps the files' sizes.
        check: check every file now (``keras_drn.data.checks.check_pairs``: one
            ``ValueError`` naming all the bad ones) instead of when each is read; also sets
            ``image_size`` when all the images share one size.

    Returns:
        ``SegmentationData`` (class names from ``info.json`` or ``"class_0"``, ...).

    Raises:
        FileNotFoundError: a list file, ``info.json`` or a listed file is missing (named).
        ValueError: an empty list, lists of different lengths, a bad ``info.json``; while
            reading (or when built, with ``check``): a mask value out of range or an
            image/mask size mismatch.
    """
    info_path = os.path.join(data_dir, "info.json")
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"{info_path!r} does not exist: the reference folder format "
                                "needs info.json with the dataset's mean and std.")
    with open(info_path, encoding="utf-8-sig") as handle:
        try:
            info = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{info_path!r} is not valid JSON: {error}") from None
    if not isinstance(info, dict) or "mean" not in info or "std" not in info:
        raise ValueError(f"{info_path!r} must hold an object with 'mean' and 'std'.")
    names = info.get("class_names")
    if names is not None and (not isinstance(names, list)
                              or not all(isinstance(n, str) for n in names)):
        raise ValueError(f"'class_names' in {info_path!r} must be a list of strings; "
                         f"received {names!r}.")
    given = {}
    if num_classes is not None:
        given["num_classes="] = num_classes
    if "num_classes" in info:
        given[f"'num_classes' in {info_path!r}"] = info["num_classes"]
    if names is not None:
        given[f"len('class_names') in {info_path!r}"] = len(names)
    if not given:
        raise ValueError(f"Number of classes unknown: pass num_classes= or put 'num_classes' "
                         f"in {info_path!r}.")
    if len(set(given.values())) > 1:
        raise ValueError(f"Conflicting numbers of classes: {given}.")
    num_classes = next(iter(given.values()))
    if names is None:
        names = [f"class_{i}" for i in range(num_classes)]

    listed = split
    if val_fraction is not None:
        own = os.path.join(data_dir, "val_images.txt")
        if os.path.isfile(own):
            raise ValueError(f"{data_dir!r} has its own val split ({own!r}): leave "
                             "val_fraction= unset.")
        listed = "train"
    image_list = os.path.join(data_dir, f"{listed}_images.txt")
    label_list = os.path.join(data_dir, f"{listed}_labels.txt")
    if split == "val" and not os.path.isfile(image_list) and os.path.isfile(
            os.path.join(data_dir, "train_images.txt")):
        raise FileNotFoundError(f"{data_dir!r} has a train split but no val split "
                                f"({image_list!r} does not exist): {NO_VAL_HINT}")
    relative = _read_list(image_list)
    images = [os.path.join(data_dir, p) for p in relative]
    labels = [os.path.join(data_dir, p) for p in _read_list(label_list)]
    if len(images) != len(labels):
        raise ValueError(f"{image_list!r} lists {len(images)} images but {label_list!r} lists "
                         f"{len(labels)} labels.")
    _check_files_exist(images, image_list)
    _check_files_exist(labels, label_list)
    name = f"{os.path.basename(os.path.normpath(data_dir))}/{split}"
    if val_fraction is not None:
        kept = _split_part(len(images), split, val_fraction, seed, repr(image_list))
        images, labels, relative = ([items[i] for i in kept]
                                    for items in (images, labels, relative))
        name += f" ({val_fraction:g} of train held out, seed {seed})"
    return _pairs_source(
        images, labels, [os.path.splitext(p)[0] for p in relative], num_classes, mask_values,
        size, check, class_names=tuple(names), mean=info["mean"], std=info["std"], name=name)


# What a folder without a validation split can do instead.
NO_VAL_HINT = ("give val_fraction=0.2 to hold out a seeded fifth of the training files for "
                "validation, or folds=5 to validate on a held-out fold (k-fold).")


def image_mask_folders(image_dir, mask_dir, num_classes, class_names=None, mean=None,
                       std=None, mask_values=None, val_fraction=None, split="train", seed=0,
                       size=None, check=False):
    """Images in one folder, their masks in another, paired by file stem.

    ``image_dir/abc.jpg`` (or any of ``keras_drn.constants.IMAGE_EXTENSIONS``, any case)
    pairs with ``mask_dir/abc.png``, a
    single-channel PNG of class ids (255 = ignore; palette PNGs such as PASCAL VOC's give
    their palette indices). Other files are ignored. Examples are ordered by stem.

    Args:
        image_dir, mask_dir: the two folders.
        num_classes: number of classes.
        class_names: ``num_classes`` names (default ``"class_0"``, ...).
        mean, std: 3 floats each on the 0-1 RGB scale. Default: ImageNet's,
            (0.485, 0.456, 0.406) and (0.229, 0.224, 0.225), right for ImageNet-pretrained
            backbones; compute your dataset's own for training from scratch.
        mask_values: binary masks only: ``"0/1"``, ``"0/255"`` or ``None`` (decided from all
            the masks), as ``reference_folder``'s.
        val_fraction, split, seed: ``None``: every pair (``split`` unused); a fraction: the
            ``seed``-ed part (``holdout``) of the pairs held out for validation
            (``split="val"``) or the rest (``split="train"``).
        size, check: as ``reference_folder``'s.

    Returns:
        ``SegmentationData``.

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: a folder holds no usable files, a stem has no partner (each one named,
            with the other bad files under ``check``), two images share a stem; while reading
            (or when built, with ``check``): a mask value out of range or a size mismatch.
    """
    images = files_by_stem(image_dir, "image")
    masks = files_by_stem(mask_dir, "mask", MASK_EXTENSIONS)
    problems = [(images[s], f"(no mask {s}.png in {os.fspath(mask_dir)!r})")
                for s in sorted(set(images) - set(masks))]
    problems += [(masks[s], f"(no image {s}.* in {os.fspath(image_dir)!r})")
                 for s in sorted(set(masks) - set(images))]
    stems = sorted(set(images) & set(masks))
    name = os.path.basename(os.path.normpath(image_dir))
    if val_fraction is not None and stems:
        stems = [stems[i] for i in _split_part(len(stems), split, val_fraction, seed,
                                               repr(os.fspath(image_dir)))]
        name += f"/{split} ({val_fraction:g} held out, seed {seed})"
    return _pairs_source(
        [images[s] for s in stems], [masks[s] for s in stems], stems, num_classes,
        mask_values, size, check, problems,
        class_names=class_names or tuple(f"class_{i}" for i in range(num_classes)),
        mean=IMAGENET_MEAN if mean is None else mean,
        std=IMAGENET_STD if std is None else std, name=name)


def _lookup_table(mapping, size=256):
    table = np.full(size, IGNORE_LABEL, np.uint8)
    for source, target in mapping.items():
        table[source] = target
    return tf.constant(table)


def rgb8(image):
    """A decoded image tensor ``(H, W, C)`` (uint8, or uint16 from a 16-bit TFDS feature) as
    uint8 RGB ``(H, W, 3)`` with ``read_image``'s rules: 16-bit values keep their high byte,
    one channel is repeated to 3, a fourth (alpha) channel is dropped."""
    if image.dtype == tf.uint16:
        image = tf.cast(tf.bitwise.right_shift(image, tf.constant(8, tf.uint16)), tf.uint8)
    elif image.dtype != tf.uint8:
        raise ValueError(f"Images must be uint8 or uint16 tensors; received {image.dtype.name}.")
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return image[..., :3]


def _checked_pair(image, mask, key, valid, description):
    """Asserts equal sizes and valid mask values, naming the example ``key``."""
    image = rgb8(image)
    mask = mask[..., 0]
    same_size = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)))
    bad_values = tf.boolean_mask(mask, ~valid(mask))
    checks = [
        tf.debugging.Assert(same_size, ["Image", key, "has height x width", tf.shape(image)[:2],
                                        "but its mask has", tf.shape(mask)]),
        tf.debugging.Assert(tf.equal(tf.size(bad_values), 0),
                            ["Mask of", key, "holds label value", bad_values[:1],
                             f"outside {description}"]),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.identity(mask)


def _pet_example(example):
    table = _lookup_table(_PET_CLASSES)
    image, mask = _checked_pair(
        example["image"], example["segmentation_mask"], example["file_name"],
        lambda m: (m >= 1) & (m <= 3), "the trimap values 1 (pet), 2 (background), 3 (border)",
    )
    return image, tf.gather(table, tf.cast(mask, tf.int32))


def _cityscapes_example(example):
    table = _lookup_table(_CITYSCAPES_TRAIN_IDS)
    image, mask = _checked_pair(
        example["image_left"], example["segmentation_label"], example["image_id"],
        lambda m: m <= _CITYSCAPES_MAX_ID, f"the Cityscapes label ids 0..{_CITYSCAPES_MAX_ID}",
    )
    return image, tf.gather(table, tf.cast(mask, tf.int32))


_TFDS = {
    # name: (tfds name, example mapper, class names, mean, std)
    "oxford_iiit_pet": ("oxford_iiit_pet", _pet_example, PET_CLASS_NAMES, IMAGENET_MEAN,
                        IMAGENET_STD),
    "cityscapes": ("cityscapes/semantic_segmentation", _cityscapes_example,
                   CITYSCAPES_CLASS_NAMES, CITYSCAPES_MEAN, CITYSCAPES_STD),
}


def tfds_dataset(name, split, data_dir=None):
    """A segmentation dataset from TensorFlow Datasets, mapped to class ids.

    Supported:

    - ``"oxford_iiit_pet"`` (downloaded by TFDS on first use): the trimap
      ``segmentation_mask`` (1 pet, 2 background, 3 border) becomes 3 classes,
      0 background, 1 pet, 2 border; ImageNet mean/std.
    - ``"cityscapes"`` (config ``semantic_segmentation``): TFDS cannot download it; put the
      Cityscapes zip files in ``<data_dir>/downloads/manual/`` as the TFDS catalogue says.
      Label ids become the 19 train ids of cityscapesScripts (road 0 ... bicycle 18), every
      other id 255; the DRN reference's Cityscapes mean/std.

    Args:
        name: one of the names above.
        split: a TFDS split string (``"train"``, ``"test"``, ``"train[:90%]"``, ...).
        data_dir: TFDS data folder (default ``~/tensorflow_datasets``).

    Returns:
        ``SegmentationData``. Masks with values outside the dataset's encoding, or of another
        size than their image, stop the iteration with an error naming the example's file.

    Raises:
        ValueError: an unsupported ``name`` (the supported ones are listed).
        ImportError: tensorflow-datasets is not installed.
    """
    if name not in _TFDS:
        raise ValueError(f"Unsupported TFDS dataset {name!r}; supported: {sorted(_TFDS)}.")
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError("tfds_dataset needs tensorflow-datasets: pip install "
                          "'keras-drn[data]' (or tensorflow-datasets).") from error
    tfds_name, mapper, class_names, mean, std = _TFDS[name]
    dataset, info = tfds.load(tfds_name, split=split, data_dir=data_dir, with_info=True,
                              shuffle_files=False)
    size = int(dataset.cardinality())
    if size < 0:
        size = info.splits[split].num_examples
    return SegmentationData(
        dataset=dataset.map(mapper, num_parallel_calls=tf.data.AUTOTUNE),
        num_classes=len(class_names),
        class_names=class_names,
        mean=mean,
        std=std,
        size=size,
        name=f"{name}/{split}",
    )


def _split_seed(seed, split):
    """Independent seeds per split, derived from ``seed``."""
    index = tuple(_SYNTHETIC_COUNTS).index(split)
    return int(np.random.SeedSequence((seed, index)).generate_state(1)[0])


def _as_uint8(images):
    return np.round(images * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _synthetic_statistics(size, seed):
    images = _as_uint8(make_scenes(_SYNTHETIC_COUNTS["train"], size=size,
                                   seed=_split_seed(seed, "train"))[0])
    pixels = images.reshape(-1, 3) / 255.0
    return tuple(pixels.mean(axis=0).tolist()), tuple(pixels.std(axis=0).tolist())


def synthetic_scenes(split="train", count=None, size=64, seed=0):
    """The embedded synthetic scenes (``keras_drn.data.make_scenes``) as a segmentation source.

    4 classes: background, disk, line (1 to 3 pixels wide), square, one small object per
    textured scene. No download. The splits are disjoint: each draws its scenes from its own
    seed derived from ``seed``. ``mean`` and ``std`` are those of the default training split
    (512 scenes of this ``size`` and ``seed``), whatever ``split`` and ``count``, so the train
    and val sources of one seed normalise alike.

    Args:
        split: ``"train"`` or ``"val"``.
        count: number of scenes (default 512 for train, 128 for val).
        size: side of the square scenes, >= 16.
        seed: int.

    Returns:
        ``SegmentationData`` of uint8 ``(size, size, 3)`` images and ``(size, size)`` masks.
    """
    if split not in _SYNTHETIC_COUNTS:
        raise ValueError(f"Unknown split {split!r}; valid: {sorted(_SYNTHETIC_COUNTS)}.")
    count = _SYNTHETIC_COUNTS[split] if count is None else count
    images, masks, _ = make_scenes(count, size=size, seed=_split_seed(seed, split))
    mean, std = _synthetic_statistics(size, seed)
    return SegmentationData(
        dataset=tf.data.Dataset.from_tensor_slices((_as_uint8(images), masks)),
        num_classes=len(SYNTHETIC_CLASS_NAMES),
        class_names=SYNTHETIC_CLASS_NAMES,
        mean=mean,
        std=std,
        size=count,
        name=f"synthetic/{split}",
        image_size=(size, size),
    )
