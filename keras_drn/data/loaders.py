"""The loaders of the data specs of ``keras_drn.data.registry``: one function per form, called
with the spec less its prefix and the options of ``load_segmentation`` /
``load_classification``. They run on ``tf.data`` (TensorFlow), imported on first use."""

import os
import pathlib

from keras_drn.data import classification, sources
from keras_drn.data.rle_csv import rle_csv_folder

__all__ = [
    "classification_csv",
    "classification_folder",
    "classification_synthetic",
    "classification_tfds",
    "segmentation_folder",
    "segmentation_rle",
    "segmentation_synthetic",
    "segmentation_tfds",
]

SEGMENTATION_LAYOUTS = (
    "FOLDER/info.json with FOLDER/<split>_images.txt and <split>_labels.txt (the reference's); "
    "FOLDER/<split>/images/ and FOLDER/<split>/masks/; FOLDER/images/ and FOLDER/masks/ (no "
    "splits); FOLDER/train.csv and FOLDER/images/ (run-length-encoded binary masks). Masks are "
    "single-channel PNGs of class ids (255 = ignore) named as their images (a.jpg: a.png)"
)


def _refuse(form, **options):
    for name, (value, why) in options.items():
        if value is not None:
            raise ValueError(f"{name}= does not apply to {form} data: {why}; received "
                             f"{name}={value!r}.")


def segmentation_synthetic(target, split, num_classes, size, seed, val_fraction, mask_values,
                           check):
    _refuse("synthetic", val_fraction=(val_fraction, "the scenes have their own val split"),
            mask_values=(mask_values, "their masks are class ids"))
    return sources.synthetic_scenes(split, size=64 if size is None else size, seed=seed)


def segmentation_tfds(target, split, num_classes, size, seed, val_fraction, mask_values,
                      check):
    _refuse(f"tfds:{target}", val_fraction=(
        val_fraction, "hold out part of a TFDS split with a split string, such as "
        "split='train[80%:]'"), mask_values=(mask_values, "the dataset's masks are mapped to "
                                             "class ids"))
    data = sources.tfds_dataset(target, split)
    return data if size is None else sources.resized(data, size)


def segmentation_rle(target, split, num_classes, size, seed, val_fraction, mask_values, check,
                     order="F"):
    if num_classes not in (None, 1):
        raise ValueError(f"{target} is a Kaggle CSV folder of binary masks (num_classes=1); "
                         f"received num_classes={num_classes}.")
    _refuse("run-length-encoded", mask_values=(mask_values, "its masks are 0/1"))
    if not os.path.isdir(target):
        raise ValueError(f"The folder {target!r} does not exist (looked in "
                         f"{os.path.abspath(target)!r}).")
    return rle_csv_folder(target, split, order=order, val_fraction=val_fraction, seed=seed,
                          size=size, check=check)


def _need_classes(num_classes, target):
    if num_classes is None:
        raise ValueError(f"{target!r} is an image/mask folder: give the number of classes, "
                         "num_classes= (1 for binary masks).")


def _contents(folder):
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return (", ".join(names[:10]) + more) if names else "nothing"


def segmentation_folder(target, split, num_classes, size, seed, val_fraction, mask_values,
                        check):
    """A folder in one of ``SEGMENTATION_LAYOUTS``, told apart by what it holds."""
    folder = pathlib.Path(target)
    if not folder.is_dir():
        hint = (" (a CSV of run-length-encoded masks: give the folder holding it, "
                "rle:FOLDER)" if folder.suffix.lower() == ".csv" else "")
        raise ValueError(f"{target!r} is a file{hint}; segmentation data is a folder in one "
                         f"of the layouts: {SEGMENTATION_LAYOUTS}.")

    def convention():  # binary masks: one 0/1 or 0/255 convention for every split
        if num_classes == 1 and mask_values is None:
            return sources.folder_mask_values(folder, skip_unreadable=check)
        return mask_values

    options = dict(val_fraction=val_fraction, seed=seed, size=size, check=check)
    if (folder / "info.json").is_file():
        return sources.reference_folder(folder, split, num_classes=num_classes,
                                        mask_values=convention(), **options)
    if (folder / split / "images").is_dir() or (folder / "train" / "images").is_dir():
        _need_classes(num_classes, target)
        if val_fraction is not None:
            if (folder / "val").is_dir():
                raise ValueError(f"{target!r} has its own val/ split: leave val_fraction= "
                                 "unset.")
            base = folder / "train"
        else:
            base = folder / split
            if not base.is_dir():
                hint = (sources.NO_VAL_HINT if split == "val" else
                        f"it holds {_contents(folder)}.")
                raise ValueError(f"{target!r} has train/ but no {split}/ folder: {hint}")
        return sources.image_mask_folders(base / "images", base / "masks", num_classes,
                                          mask_values=convention(), split=split, **options)
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        _need_classes(num_classes, target)
        if val_fraction is None and split != "train":
            raise ValueError(f"{target!r} holds images/ and masks/ without splits (all of them "
                             f"are its train split), so it has no {split} split: "
                             + sources.NO_VAL_HINT)
        return sources.image_mask_folders(folder / "images", folder / "masks", num_classes,
                                          mask_values=convention(), split=split, **options)
    if (folder / "train.csv").is_file():
        return segmentation_rle(target, split, num_classes, size, seed, val_fraction,
                                mask_values, check)
    raise ValueError(f"{target!r} is a folder in none of the layouts of segmentation data "
                     f"({SEGMENTATION_LAYOUTS}); it holds {_contents(folder)}.")


def _split(source, val_fraction, seed):
    return classification.train_val_split(source, val_fraction, seed)


def classification_synthetic(target, val_fraction, image_dir, size, seed, on_error):
    return (classification.synthetic_classification("train", size=size, seed=seed),
            classification.synthetic_classification("val", size=size, seed=seed))


def classification_tfds(target, val_fraction, image_dir, size, seed, on_error):
    return _split(classification.tfds_classification(target, "train"), val_fraction, seed)


def classification_csv(target, val_fraction, image_dir, size, seed, on_error):
    return _split(classification.csv_labels(target, image_dir, on_error=on_error),
                  val_fraction, seed)


def classification_folder(target, val_fraction, image_dir, size, seed, on_error):
    if not os.path.isdir(target):
        raise ValueError(f"{target!r} is a file; classification data is a folder with one "
                         "subfolder of images per class, or a CSV file of (filename, label) "
                         "rows (FILE.csv).")
    return _split(classification.image_folder(target, on_error=on_error), val_fraction, seed)
