"""Image classification data: sources, a seeded train/val split and batched pipelines.

Every source returns a ``ClassificationData`` whose ``dataset`` yields unbatched
``(image, label)`` pairs: uint8 ``(H, W, 3)`` RGB (grayscale repeated to 3 channels, alpha
dropped) and an int32 class index into ``class_names``. Sources:

- ``image_folder(dir)``: one subfolder per class (the Kaggle / ``image_dataset_from_directory``
  layout); ``csv_labels(csv, image_dir)``: a CSV of (filename, label) rows;
  ``tfds_classification(name, split)``: a TensorFlow Datasets image classification dataset;
  ``synthetic_classification(split)``: the embedded scenes labelled by their object.

Images are read by ``keras_drn.data.read_image`` (grayscale to RGB, alpha dropped, 16-bit
files scaled to 8 bits). Unreadable, corrupt or truncated image files are found when a file
source is built (every file is decoded once, in full): each
one is reported by name in a ``UserWarning`` and skipped, and the skipped paths are kept in
``ClassificationData.skipped`` (``on_error="raise"`` fails instead, with a ``ValueError``
naming them). A file that changes after the check and then fails to decode stops the
iteration with an error naming it. Missing folders, a class folder with no images,
a CSV label outside ``class_names`` and an empty source raise ``ValueError`` naming what is
wrong.

``classification_pipeline`` batches a source for ``model.fit`` on any Keras backend. Images
stay on the 0-255 scale: the normalisation belongs to the model
(``keras_drn.workflows.classification.build_classifier`` puts it inside), so raw images are all a model needs.
"""

import csv
import dataclasses
import os
import warnings
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_drn.data.files import list_images
from keras_drn.data.images import image_problem, read_image
from keras_drn.data.sources import holdout, rgb8
from keras_drn.data.synthetic import CLASS_NAMES as SCENE_CLASS_NAMES
from keras_drn.data.synthetic import make_scenes

__all__ = [
    "ClassificationData",
    "SYNTHETIC_CLASS_NAMES",
    "classification_pipeline",
    "csv_labels",
    "image_folder",
    "list_images",
    "synthetic_classification",
    "tfds_classification",
    "train_val_split",
]

# The scenes' object classes (the segmentation classes without "background").
SYNTHETIC_CLASS_NAMES = SCENE_CLASS_NAMES[1:]
_SYNTHETIC_COUNTS = {"train": 768, "val": 256}
_ON_ERROR = ("skip", "raise")


@dataclasses.dataclass(frozen=True)
class ClassificationData:
    """A classification dataset: its examples and their class names.

    Attributes:
        records: unbatched ``tf.data.Dataset`` of undecoded records (for files: path and
            label), cheap to shuffle and split.
        decode: maps a record to ``(image, label)``: uint8 ``(H, W, 3)``, int32 scalar.
        class_names: names of the classes, in label order.
        size: number of examples.
        name: a short description, for logs.
        skipped: paths of unreadable files that were left out.
    """

    records: tf.data.Dataset
    decode: Callable
    class_names: tuple
    size: int
    name: str
    skipped: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if not self.class_names:
            raise ValueError(f"{self.name} has no classes.")
        if self.size < 1:
            raise ValueError(f"{self.name} has no examples.")

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def dataset(self):
        """Unbatched ``(image, label)`` pairs: uint8 ``(H, W, 3)`` RGB, int32 label."""
        return self.records.map(self.decode, num_parallel_calls=tf.data.AUTOTUNE)


def _decode_file(path, label):
    image = tf.numpy_function(read_image, [path], tf.uint8)
    image.set_shape([None, None, 3])
    return image, tf.cast(label, tf.int32)


def _check_readable(paths, labels, on_error, what):
    """Decodes every file in full (``read_image``: truncated files fail too, which PIL's
    ``verify`` lets through); returns the readable ``(paths, labels)`` and the skipped paths,
    warning about each skipped one by name, or raises a ``ValueError`` naming them all for
    ``on_error="raise"``."""
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}; received {on_error!r}.")
    bad = {path: reason for path in paths if (reason := image_problem(path)) is not None}
    if bad:
        listing = "; ".join(f"{p!r} ({r})" for p, r in list(bad.items())[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        if on_error == "raise":
            raise ValueError(f"{len(bad)} unreadable image file(s) in {what}: {listing}{more}.")
        warnings.warn(f"Skipping {len(bad)} unreadable image file(s) in {what}: "
                      f"{listing}{more}.", stacklevel=3)
    kept = [(p, y) for p, y in zip(paths, labels) if p not in bad]
    return [p for p, _ in kept], [y for _, y in kept], tuple(bad)


def _file_source(paths, labels, class_names, name, skipped):
    records = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32)))
    return ClassificationData(records, _decode_file, class_names, len(paths), name, skipped)


def image_folder(directory, class_names=None, on_error="skip"):
    """Images in one subfolder per class: ``directory/<class name>/<image>``.

    Args:
        directory: the folder of class folders.
        class_names: the classes, in label order (default: the subfolders, sorted, as
            ``keras.utils.image_dataset_from_directory`` orders them).
        on_error: ``"skip"`` (warn naming each unreadable file, leave it out) or ``"raise"``.

    Raises:
        ValueError: no such folder, no class folders, a class folder missing or without images.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"The image folder {directory!r} does not exist or is not a folder.")
    if class_names is None:
        class_names = sorted(d for d in os.listdir(directory)
                             if os.path.isdir(os.path.join(directory, d)))
        if not class_names:
            raise ValueError(f"{directory!r} has no class subfolders: expected "
                             "<folder>/<class name>/<image files>.")
    paths, labels = [], []
    for label, class_name in enumerate(class_names):
        files = list_images(os.path.join(directory, class_name), f"class folder of {class_name!r}")
        paths += files
        labels += [label] * len(files)
    paths, labels, skipped = _check_readable(paths, labels, on_error, repr(directory))
    return _file_source(paths, labels, class_names, f"folder {directory}", skipped)


def csv_labels(csv_path, image_dir=None, class_names=None, filename_column=None,
               label_column=None, extension="", on_error="skip"):
    """Images listed in a CSV of (filename, label) rows, such as a Kaggle ``train.csv``.

    Args:
        csv_path: a CSV file with a header row.
        image_dir: folder the file names are relative to (default: the CSV's folder).
        class_names: the classes, in label order (default: the labels found, sorted). A label
            outside them is an error.
        filename_column, label_column: header names (default: the first two columns).
        extension: appended to each file name (Kaggle CSVs often list ids: ``".jpg"``).
        on_error: ``"skip"`` (warn naming each unreadable file, leave it out) or ``"raise"``.

    Raises:
        ValueError: a missing CSV or column, no rows, a label outside ``class_names`` (named,
            with its line), listed files that do not exist (named).
    """
    csv_path = os.fspath(csv_path)
    if not os.path.isfile(csv_path):
        raise ValueError(f"The CSV file {csv_path!r} does not exist.")
    image_dir = os.path.dirname(csv_path) if image_dir is None else os.fspath(image_dir)
    with open(csv_path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = reader.fieldnames or []
        if len(columns) < 2:
            raise ValueError(f"{csv_path!r} needs a header and at least two columns "
                             f"(filename, label); found {columns}.")
        filename_column = filename_column or columns[0]
        label_column = label_column or columns[1]
        for column in (filename_column, label_column):
            if column not in columns:
                raise ValueError(f"{csv_path!r} has no column {column!r}; columns: {columns}.")
        rows = [(line, row[filename_column], row[label_column].strip())
                for line, row in enumerate(reader, start=2)]
    if not rows:
        raise ValueError(f"{csv_path!r} lists no images.")
    if class_names is None:
        class_names = sorted({label for _, _, label in rows})
    index = {str(name): i for i, name in enumerate(class_names)}
    unknown = [(line, label) for line, _, label in rows if label not in index]
    if unknown:
        shown = ", ".join(f"{label!r} (line {line})" for line, label in unknown[:5])
        raise ValueError(f"{csv_path!r} has labels that are not among the classes "
                         f"{list(index)}: {shown}"
                         + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "") + ".")
    paths = [os.path.join(image_dir, name + extension) for _, name, _ in rows]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"{len(missing)} file(s) listed in {csv_path!r} do not exist: "
                         + ", ".join(repr(p) for p in missing[:5]) + ".")
    labels = [index[label] for _, _, label in rows]
    paths, labels, skipped = _check_readable(paths, labels, on_error, repr(csv_path))
    return _file_source(paths, labels, class_names, f"csv {csv_path}", skipped)


def tfds_classification(name, split="train", data_dir=None, image_key="image",
                        label_key="label"):
    """An image classification dataset of TensorFlow Datasets (``tfds.load``).

    Works with any dataset whose examples have an image feature and a ``ClassLabel`` feature
    (``"tf_flowers"``, ``"cats_vs_dogs"``, ``"mnist"``, ...); grayscale images become RGB.

    Args:
        name: TFDS name (with an optional config and version).
        split: a TFDS split string (``"train"``, ``"train[:80%]"``, ...).
        data_dir: TFDS data folder (default ``~/tensorflow_datasets``).
        image_key, label_key: feature names.

    Raises:
        ValueError: the dataset lacks the features (the available ones are listed).
    """
    import tensorflow_datasets as tfds

    records, info = tfds.load(name, split=split, data_dir=data_dir, with_info=True,
                              shuffle_files=False)
    features = info.features
    if image_key not in features or label_key not in features:
        raise ValueError(f"TFDS dataset {name!r} has features {sorted(features.keys())}; "
                         f"expected an image {image_key!r} and a label {label_key!r}.")
    class_names = features[label_key].names
    size = int(records.cardinality())
    if size < 0:
        size = info.splits[split].num_examples

    def decode(example):
        return rgb8(example[image_key]), tf.cast(example[label_key], tf.int32)

    return ClassificationData(records, decode, class_names, size, f"tfds {name}/{split}")


def _split_seed(seed, split):
    index = tuple(_SYNTHETIC_COUNTS).index(split)
    return int(np.random.SeedSequence((seed, index, 1)).generate_state(1)[0])


def _object_crops(images, masks, size, rng):
    """``size x size`` crops of ``images`` around each mask's object (centre jittered by up to
    ``size / 8``, kept inside the image)."""
    crops = np.empty((len(images), size, size, 3), images.dtype)
    side = images.shape[1]
    for i, mask in enumerate(masks):
        rows, cols = np.nonzero(mask)
        centre = np.array([rows.mean(), cols.mean()]) + rng.uniform(-size / 8, size / 8, 2)
        top, left = np.clip(np.round(centre - size / 2).astype(int), 0, side - size)
        crops[i] = images[i, top:top + size, left:left + size]
    return crops


def synthetic_classification(split="train", count=None, size=32, seed=0):
    """The embedded scenes (``keras_drn.data.make_scenes``) as a 3-class classification set:
    the label is the scene's object (disk, line, square), the image a ``size x size`` crop
    around the object of a scene twice as large (so the object spans more pixels than in a
    whole scene of that size: disks and squares are told apart by their outline). No
    download; the splits draw from disjoint seeds.

    Args:
        split: ``"train"`` (768 scenes by default) or ``"val"`` (256).
        count: number of scenes (default per split).
        size: side of the square images, >= 16.
        seed: int.
    """
    if split not in _SYNTHETIC_COUNTS:
        raise ValueError(f"Unknown split {split!r}; valid: {sorted(_SYNTHETIC_COUNTS)}.")
    count = _SYNTHETIC_COUNTS[split] if count is None else count
    split_seed = _split_seed(seed, split)
    images, masks, labels = make_scenes(count, size=2 * size, seed=split_seed)
    images = _object_crops(images, masks, size, np.random.default_rng(split_seed))
    images = np.round(images * 255.0).astype("uint8")
    records = tf.data.Dataset.from_tensor_slices((images, labels))
    return ClassificationData(records, lambda image, label: (image, label),
                              SYNTHETIC_CLASS_NAMES, count, f"synthetic/{split}")


def train_val_split(data, val_fraction=0.2, seed=0):
    """Splits a source into disjoint ``(train, val)`` sources by a seeded permutation.

    The same ``seed`` gives the same split on every run and machine; the split happens on the
    undecoded records, so no image is read twice.
    """
    is_val = holdout(data.size, val_fraction, seed, data.name)
    val_size = int(is_val.sum())
    is_val = tf.constant(is_val)

    def part(keep_val, size, label):
        def selected(index, record):
            return tf.equal(is_val[index], keep_val)

        def drop_index(index, record):
            return record

        records = data.records.enumerate().filter(selected).map(drop_index)
        records = records.apply(tf.data.experimental.assert_cardinality(size))
        return dataclasses.replace(data, records=records, size=size,
                                   name=f"{data.name} ({label}, seed {seed})")

    return (part(False, data.size - val_size, "train"), part(True, val_size, "val"))


def _random_resized_crop(image, seed, size, scale, ratio):
    """Inception-style crop (torchvision's RandomResizedCrop): a random box covering a
    fraction ``scale`` of the area with aspect ``ratio``, resized to ``size``."""
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=ratio, area_range=scale,
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, extent)
    return tf.image.resize(crop, size, method="bilinear", antialias=True)


def classification_pipeline(data, batch_size, training, image_size=32, crop_scale=(0.35, 1.0),
                            flip=True, color_jitter=True, rand_augment=False, shuffle_buffer=1024,
                            seed=0, repeat=False, cache=False):
    """Turns a ``ClassificationData`` into batches for ``model.fit`` / ``evaluate``.

    Training: shuffle, random resized crop to ``image_size`` (area fraction ``crop_scale``,
    aspect 3/4 to 4/3), then, on batches, Keras preprocessing layers run inside ``tf.data``:
    ``RandomFlip("horizontal")``, ``RandomColorJitter`` (brightness, contrast, saturation, hue)
    and, optionally, ``RandAugment`` (2 ops, on the 0-255 scale); the last partial batch is
    dropped. Evaluation: a centred crop to the aspect ratio of
    ``image_size`` resized to it (``keras.layers.Resizing(crop_to_aspect_ratio=True)``).

    Args:
        data: a ``ClassificationData``.
        batch_size: examples per batch.
        training: augment and shuffle, or not.
        image_size: int or ``(height, width)`` of the batches.
        crop_scale: ``(min, max)`` area fraction of the random crop (training).
        flip, color_jitter, rand_augment: the training augmentations to use. ``RandAugment``
            is off by default: building its graph is slow (once per pipeline, slowest on
            the JAX backend), more than the small runs it would serve.
        shuffle_buffer: records in the shuffle buffer (records, not decoded images).
        seed: seeds the shuffle and the augmentation.
        repeat: repeat forever (give ``model.fit`` its ``steps_per_epoch``).
        cache: cache the decoded, resized evaluation images in memory (evaluation only).

    Returns:
        A prefetched ``tf.data.Dataset`` of ``(images, labels)``: float32 ``(B, H, W, 3)`` on
        the 0-255 scale, int32 ``(B,)``.
    """
    if not isinstance(data, ClassificationData):
        raise TypeError("data must be a ClassificationData (see keras_drn.data "
                        f"classification sources); received {type(data).__name__}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    records = data.records
    if not training:
        resize = keras.layers.Resizing(*size, crop_to_aspect_ratio=True)

        def prepare(*record):
            image, label = data.decode(*record)
            image = tf.cast(resize(tf.cast(image, tf.float32)), tf.float32)
            image.set_shape([*size, 3])
            return image, label

        dataset = records.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            dataset = dataset.cache()
        if repeat:
            dataset = dataset.repeat()
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    if not repeat and data.size < batch_size:
        raise ValueError(f"{data.name} has {data.size} examples, fewer than batch_size="
                         f"{batch_size}: training would yield no batch.")
    if shuffle_buffer > 1:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        records = records.repeat()
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def crop(record, example_seed):
        image, label = data.decode(*record) if isinstance(record, tuple) else data.decode(record)
        image = _random_resized_crop(tf.cast(image, tf.float32), example_seed, size,
                                     tuple(crop_scale), (3 / 4, 4 / 3))
        image.set_shape([*size, 3])
        return image, label

    dataset = tf.data.Dataset.zip((records, seeds)).map(crop,
                                                        num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    augmentations = []
    if flip:
        augmentations.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if color_jitter:
        augmentations.append(keras.layers.RandomColorJitter(
            value_range=(0, 255), brightness_factor=0.2, contrast_factor=0.2,
            saturation_factor=(0.3, 0.7), hue_factor=0.05, seed=seed))
    if rand_augment:
        augmentations.append(keras.layers.RandAugment(value_range=(0, 255), num_ops=2,
                                                      factor=0.5, seed=seed))
    if augmentations:
        # Layer by layer: a Keras preprocessing layer runs on TensorFlow inside tf.data
        # whatever the backend, a Sequential of them does not.
        def apply(images, labels):
            for layer in augmentations:
                images = layer(images, training=True)
            return tf.cast(images, tf.float32), labels

        dataset = dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
