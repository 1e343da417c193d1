"""Data specs: the strings that name a dataset (``"synthetic"``, ``"tfds:oxford_iiit_pet"``,
``"rle:FOLDER"``, a folder path), one registry per task.

A registry maps each form of spec to its loader (a ``"module:function"`` name, imported on
first use) and a line of help. Importing this module imports neither Keras nor TensorFlow,
so a command line can print the accepted forms (``SEGMENTATION_SOURCES.help()``) before it
needs them. Adding a data source is one ``DataSource`` entry and its loader.

Loading (``load_segmentation``, ``load_classification``) checks the data before anything
trains on it (keras_drn.data.checks: every image decodes, every mask pairs with an image and
holds valid class ids; every bad file named in one error). Messages name the Python
arguments as ``name=`` (``val_fraction=0.2``).
"""

import dataclasses
import importlib
import os

__all__ = ["CLASSIFICATION_SOURCES", "SEGMENTATION_SOURCES", "DataSource", "Registry",
           "load_classification", "load_segmentation"]


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One form of data spec.

    Attributes:
        form: how the spec is written, for help and errors (``"tfds:NAME"``).
        help: what it names, one line.
        loader: ``"module:function"``; called as ``function(target, **options)`` with the spec
            less its prefix (the whole spec for a path or a name).
        prefix: the spec starts with it (``"tfds:"``); ``None`` for the other kinds.
        name: the whole spec is this name (``"synthetic"``).
        suffix: a path ending so (``".csv"``, any case).
        keywords: ``(name, value)`` pairs the loader is also given (one loader may serve
            several forms: ``order`` of ``rle:`` and ``rle-c:``).

    A source without ``prefix`` or ``name`` reads paths: a spec that names no existing file
    or folder is refused before its loader runs.
    """

    form: str
    help: str
    loader: str
    prefix: str = None
    name: str = None
    suffix: str = None
    keywords: tuple = ()

    @property
    def is_path(self):
        return self.prefix is None and self.name is None

    def matches(self, spec):
        if self.prefix is not None:
            return spec.startswith(self.prefix)
        if self.name is not None:
            return spec == self.name
        if self.suffix is not None:
            return spec.lower().endswith(self.suffix)
        return True  # a path

    def target(self, spec):
        return spec[len(self.prefix):] if self.prefix is not None else spec

    def load(self, spec, **options):
        module, function = self.loader.split(":")
        loader = getattr(importlib.import_module(module), function)
        return loader(self.target(spec), **dict(self.keywords), **options)


class Registry:
    """The data sources of one task, tried in order (the first match reads the spec)."""

    def __init__(self, task, sources):
        self.task = task
        self.sources = list(sources)

    def register(self, source, before=None):
        """Adds ``source`` (before the entry of form ``before``, else last but the path
        entries, which match any spec)."""
        forms = [s.form for s in self.sources]
        if source.form in forms:
            raise ValueError(f"A {self.task} data source {source.form!r} is registered "
                             "already.")
        if before is None:
            paths = [i for i, s in enumerate(self.sources) if s.is_path]
            index = paths[0] if paths else len(self.sources)
        else:
            index = forms.index(before)
        self.sources.insert(index, source)

    def forms(self):
        return [source.form for source in self.sources]

    def help(self):
        """The accepted forms, one sentence each: for a command line's help."""
        return "; ".join(f"{s.form}: {s.help}" for s in self.sources)

    def resolve(self, spec):
        """The source that reads ``spec``. ``ValueError`` naming the spec and the accepted
        forms when none does; a path that does not exist is named as such."""
        if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec):
            raise ValueError(f"Unknown data {spec!r}: give one of {self._brief()}.")
        spec = os.fspath(spec)
        for source in self.sources:
            if source.matches(spec):
                if source.is_path and not os.path.exists(spec):
                    raise ValueError(
                        f"Unknown data {spec!r}: the path {os.path.abspath(spec)!r} does not "
                        f"exist; the other forms are {self._brief()}.")
                return source
        raise ValueError(f"Unknown data {spec!r}: give one of {self._brief()}.")

    def _brief(self):
        return ", ".join(self.forms())

    def load(self, spec, **options):
        """Reads ``spec`` with its source's loader, giving it ``options``."""
        source = self.resolve(spec)
        return source.load(os.fspath(spec), **options)


_LOADERS = "keras_drn.data.loaders"

SEGMENTATION_SOURCES = Registry("segmentation", [
    DataSource("synthetic", "the embedded synthetic scenes (4 classes, no download; size= "
               "sets their side, 64 by default)", f"{_LOADERS}:segmentation_synthetic",
               name="synthetic"),
    DataSource("tfds:NAME", "a TensorFlow Datasets dataset: oxford_iiit_pet or cityscapes",
               f"{_LOADERS}:segmentation_tfds", prefix="tfds:"),
    DataSource("rle:FOLDER", "a Kaggle binary folder: train.csv of run-length-encoded masks "
               "(ImageId,EncodedPixels; column-major) and images/",
               f"{_LOADERS}:segmentation_rle", prefix="rle:", keywords=(("order", "F"),)),
    DataSource("rle-c:FOLDER", "as rle:FOLDER, with row-major run-length encoding",
               f"{_LOADERS}:segmentation_rle", prefix="rle-c:", keywords=(("order", "C"),)),
    DataSource("FOLDER", "a folder in one of the layouts: the reference's (info.json, "
               "<split>_images.txt, <split>_labels.txt), <split>/images + <split>/masks, "
               "images/ + masks/ (no splits: give val_fraction= or folds=), or train.csv + "
               "images/ (as rle:FOLDER); masks are PNGs of class ids named as their images",
               f"{_LOADERS}:segmentation_folder"),
])

CLASSIFICATION_SOURCES = Registry("classification", [
    DataSource("synthetic", "the embedded scenes labelled by their object: disk, line, square",
               f"{_LOADERS}:classification_synthetic", name="synthetic"),
    DataSource("tfds:NAME", "a TensorFlow Datasets image classification dataset",
               f"{_LOADERS}:classification_tfds", prefix="tfds:"),
    DataSource("FILE.csv", "a CSV file of (filename, label) rows, images beside it or in "
               "image_dir=", f"{_LOADERS}:classification_csv", suffix=".csv"),
    DataSource("FOLDER", "a folder with one subfolder of images per class",
               f"{_LOADERS}:classification_folder"),
])


def load_segmentation(spec, split="train", num_classes=None, size=None, seed=0,
                      val_fraction=None, mask_values=None, check=True):
    """The ``keras_drn.data.SegmentationData`` of ``split`` of the data ``spec`` names
    (``SEGMENTATION_SOURCES.help()``).

    Args:
        spec: ``"synthetic"``, ``"tfds:NAME"``, ``"rle:FOLDER"``, ``"rle-c:FOLDER"`` or a folder.
        split: ``"train"``, ``"val"`` (a TFDS split string for ``tfds:``).
        num_classes: the classes of an image/mask folder (1: binary masks, one logit); a
            reference folder's ``info.json`` may give them.
        size: the synthetic scenes' side (default 64); for every other source, resize its
            examples to ``size`` (int or ``(height, width)``; images bilinear, masks nearest);
            ``None`` keeps the files' sizes.
        seed: the synthetic scenes' seed and the ``val_fraction`` split's.
        val_fraction: for folder and CSV data without a validation split: hold out this
            fraction of the training files, by a seeded permutation, as ``split="val"``.
        mask_values: binary masks' convention (``"0/1"``, ``"0/255"``; default: decided from
            every mask of the folder).
        check: check every file before returning (all the bad ones named in one
            ``ValueError``); also gives ``image_size`` when the images share one size.

    Returns:
        ``SegmentationData``; its ``image_size`` is the examples' shared ``(height, width)``
        where known (a natural ``crop_size``).

    Raises:
        ValueError: an unknown spec (the accepted forms listed), a path that does not exist,
            a folder in no known layout (the layouts listed), a missing split (with what to
            give instead), an option the source does not take, bad files (all named).
    """
    return SEGMENTATION_SOURCES.load(spec, split=split, num_classes=num_classes, size=size,
                                     seed=seed, val_fraction=val_fraction,
                                     mask_values=mask_values, check=check)


def load_classification(spec, val_fraction=0.2, image_dir=None, size=32, seed=0,
                        on_error="skip"):
    """``(train, val)`` ``keras_drn.data.ClassificationData`` of the data ``spec`` names
    (``CLASSIFICATION_SOURCES.help()``): the synthetic splits, or the source split by
    ``val_fraction`` and ``seed`` (``train_val_split``). ``size`` is the synthetic images'
    side (the pipeline resizes the others: ``classification_pipeline(image_size=)``),
    ``image_dir`` a CSV's image folder, ``on_error`` what unreadable images do (``"skip"``:
    a warning naming them; ``"raise"``)."""
    return CLASSIFICATION_SOURCES.load(spec, val_fraction=val_fraction, image_dir=image_dir,
                                       size=size, seed=seed, on_error=on_error)
