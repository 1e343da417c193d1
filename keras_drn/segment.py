"""Train, evaluate and run a DRN segmenter: the workflow of the reference's ``segment.py``
(Yu, Koltun, Funkhouser, CVPR 2017; github fyu/drn) behind ``keras-drn train|evaluate|predict``.

A run folder holds what ``predict`` and ``evaluate`` need to use the model as it was trained:

- ``model.keras``: the final model; ``best.keras``: the best epoch by validation mIoU;
- ``info.json``: ``num_classes``, ``class_names``, ``mean`` and ``std`` (the normalisation of
  0-1 RGB inputs, as in the reference's ``info.json``) and the model settings;
- ``log.csv`` and ``backup/``: the per-epoch log and the state that lets an interrupted
  ``train`` with the same arguments resume at its first unfinished epoch.
"""

import json
import os
import pathlib
import tempfile
import time

import keras
import numpy as np
from PIL import Image

DATA_HELP = (
    "'synthetic' (the embedded scenes), 'tfds:<name>' (oxford_iiit_pet, cityscapes), a folder "
    "in the reference's format (info.json, <split>_images.txt, <split>_labels.txt) or a folder "
    "with <split>/images and <split>/masks (needs num_classes)"
)


def load_data(spec, split, num_classes=None, size=64, seed=0):
    """A ``keras_drn.data.SegmentationData`` for ``split`` of the source named by ``spec``
    (see ``DATA_HELP``); ValueError naming the spec when it is none of those."""
    from keras_drn import data

    if spec == "synthetic":
        return data.synthetic_scenes(split, size=size, seed=seed)
    if spec.startswith("tfds:"):
        return data.tfds_dataset(spec[len("tfds:"):], split)
    folder = pathlib.Path(spec)
    if (folder / "info.json").is_file():
        return data.reference_folder(folder, split, num_classes=num_classes)
    if (folder / split / "images").is_dir():
        if num_classes is None:
            raise ValueError(f"{spec!r} is an image/mask folder: give the number of classes "
                             "(--num-classes).")
        return data.image_mask_folders(folder / split / "images", folder / split / "masks",
                                       num_classes)
    raise ValueError(f"Unknown data {spec!r}: expected {DATA_HELP}.")


def _write_atomically(path, write):
    """Calls ``write(temporary)`` on a temporary file beside ``path``, then renames it to
    ``path``: a crash or a concurrent reader never sees a half-written file."""
    suffix = "".join(pathlib.Path(path).suffixes)  # Keras and PIL go by the suffix
    handle, temporary = tempfile.mkstemp(suffix=suffix, dir=os.path.dirname(path) or ".")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _write_json(value, path):
    _write_atomically(path, lambda temporary: pathlib.Path(temporary).write_text(
        json.dumps(value, indent=2)))


def read_info(model_path, info_path=None):
    """The ``info.json`` of a run: ``info_path``, else the one beside ``model_path``."""
    path = pathlib.Path(info_path or pathlib.Path(model_path).with_name("info.json"))
    if not path.is_file():
        raise ValueError(
            f"No {path} beside the model: it holds the classes and the normalisation the model "
            "was trained with (keras-drn train writes it). Pass --info PATH."
        )
    info = json.loads(path.read_text())
    missing = {"num_classes", "mean", "std"} - set(info)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}.")
    return info


def _check_model_path(model_path):
    if not str(model_path).endswith(".keras") or not os.path.isfile(model_path):
        raise ValueError(f"Expected an existing .keras model file; received {model_path!r}.")


def load_segmenter(model_path):
    """Loads a ``.keras`` segmenter with Keras's safe_mode on (no code from the file runs)."""
    _check_model_path(model_path)
    return keras.saving.load_model(model_path, compile=False, safe_mode=True)


def train(data="synthetic", output_dir="runs/drn", backbone="drn_d_22", head="drn",
          context=None, anti_alias=None, upsampling="deconv", backbone_weights=None,
          num_classes=None, size=64, epochs=10, batch_size=8, crop_size=None,
          optimizer="sgd", learning_rate=0.01, lr_mode="poly", step=100, momentum=0.9,
          weight_decay=1e-4, scale=2.0, rotate=10, flip=True, seed=0, verbose=2):
    """Trains a ``DRNSegmenter`` with the reference recipe and scores it on the val split.

    Returns ``(model, report)``: the final model and its ``evaluation.SegmentationReport`` on
    the validation split. Calling it again with the same arguments and ``output_dir`` after an
    interruption resumes at the first unfinished epoch (``keras.callbacks.BackupAndRestore``).
    """
    import keras_drn
    from keras_drn import data as data_lib
    from keras_drn.evaluation import evaluate_segmenter
    from keras_drn.training import (
        compile_segmenter,
        poly_schedule,
        reference_optimizer,
        step_schedule,
        training_callbacks,
    )
    from keras_drn.visualize import comparison_grid, save_png

    keras.utils.set_random_seed(seed)
    train_data = load_data(data, "train", num_classes, size, seed)
    val_data = load_data(data, "val", num_classes, size, seed)
    if train_data.size < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {train_data.size} training "
                         f"examples of {train_data.name}.")
    if crop_size is None and data == "synthetic":
        crop_size = size
    train_set = data_lib.segmentation_pipeline(
        train_data, batch_size, training=True, crop_size=crop_size, scale=scale,
        rotate=rotate, flip=flip, seed=seed)
    val_set = data_lib.segmentation_pipeline(val_data, 1 if crop_size is None else batch_size,
                                             training=False)
    model = keras_drn.DRNSegmenter(
        backbone, num_classes=train_data.num_classes, head=head, context=context,
        anti_alias=anti_alias, upsampling=upsampling, backbone_weights=backbone_weights)
    steps_per_epoch = train_data.size // batch_size
    if lr_mode == "poly":
        schedule = poly_schedule(learning_rate, epochs * steps_per_epoch)
    elif lr_mode == "step":
        schedule = step_schedule(learning_rate, steps_per_epoch, step)
    else:
        raise ValueError(f"lr_mode must be 'poly' or 'step'; received {lr_mode!r}.")
    if optimizer == "sgd":
        opt = reference_optimizer(schedule, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adamw":
        opt = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adamw'; received {optimizer!r}.")
    compile_segmenter(model, train_data.num_classes, optimizer=opt)

    os.makedirs(output_dir, exist_ok=True)
    info = {
        "num_classes": train_data.num_classes, "class_names": list(train_data.class_names),
        "mean": list(train_data.mean), "std": list(train_data.std), "data": data,
        "backbone": backbone, "head": head, "context": context, "anti_alias": anti_alias,
        "upsampling": upsampling,
    }
    _write_json(info, os.path.join(output_dir, "info.json"))
    print(f"{model.name}: {model.count_params():,} parameters, backend "
          f"{keras.backend.backend()}; {train_data.size} training and {val_data.size} "
          f"validation examples of {train_data.name}.")
    start = time.time()
    model.fit(train_set, validation_data=val_set, epochs=epochs, verbose=verbose, shuffle=False,
              callbacks=training_callbacks(output_dir))
    print(f"trained for {time.time() - start:.0f} s")
    model_path = os.path.join(output_dir, "model.keras")
    _write_atomically(model_path, model.save)

    report = evaluate_segmenter(model, val_set, train_data.num_classes,
                                class_names=train_data.class_names)
    print(f"validation IoU (%) of {model_path}:")
    print(report.table)
    inputs, labels = next(iter(val_set.unbatch().batch(6)))
    inputs = np.asarray(inputs)
    predictions = np.argmax(keras.ops.convert_to_numpy(model.predict(inputs, verbose=0)), -1)
    images = inputs * np.array(train_data.std) + np.array(train_data.mean)  # back to 0-1 RGB
    grid_path = os.path.join(output_dir, "val_predictions.png")
    save_png(comparison_grid(images, np.asarray(labels), predictions,
                             train_data.num_classes), grid_path)
    print(f"wrote {model_path} and {grid_path} (image | ground truth | prediction)")
    return model, report


def evaluate(model_path, data, split="val", scales=(1.0,), flip=False, info_path=None,
             batch_size=1, size=64, seed=0, consistency=False, max_shift=8):
    """Scores a trained segmenter on ``split`` of ``data`` (single- or multi-scale).

    Returns an ``evaluation.SegmentationReport``; with ``consistency=True`` a pair ``(report,
    shift)`` where ``shift`` is a ``keras_drn.consistency.ConsistencyReport``: for a
    segmenter the fraction of pixels whose label is unchanged under diagonal shifts of 1 to
    ``max_shift`` pixels, for a classifier (a model with ``(batch, classes)`` output; its
    report is ``None``) the fraction of images with the same top-1 class under two random
    shifts of up to ``max_shift`` pixels. A classifier is normalised with the ``info.json``
    beside it when there is one, else with the data's own statistics.
    """
    from keras_drn import data as data_lib
    from keras_drn.consistency import output_rank, shift_consistency
    from keras_drn.evaluation import evaluate_segmenter

    _check_model_path(model_path)
    model = load_segmenter(model_path)
    classifier = output_rank(model) == 2
    if classifier and not consistency:
        raise ValueError(f"{model_path} is a classifier (output {tuple(model.output.shape)}): "
                         "IoU needs a segmenter; ask for its shift consistency instead "
                         "(consistency=True, keras-drn evaluate --consistency).")
    info_file = pathlib.Path(info_path or pathlib.Path(model_path).with_name("info.json"))
    from keras_drn.classify import is_classifier_run

    if is_classifier_run(model_path, info_path):
        raise ValueError(f"{model_path} is a classification run (it normalises raw images "
                         "itself): score it with keras_drn.classify.evaluate, which "
                         "keras-drn evaluate calls for such runs.")
    info = read_info(model_path, info_path) if not classifier or info_file.is_file() else None
    num_classes = None if info is None or classifier else info["num_classes"]
    source = load_data(data, split, num_classes, size, seed)
    if not classifier and source.num_classes != info["num_classes"]:
        raise ValueError(f"{data!r} has {source.num_classes} classes, the model "
                         f"{info['num_classes']}.")
    if info is not None:
        source = _with_normalisation(source, info)
    dataset = data_lib.segmentation_pipeline(source, batch_size, training=False)
    report = None
    if not classifier:
        report = evaluate_segmenter(model, dataset, info["num_classes"], scales=scales,
                                    flip=flip, class_names=info.get("class_names"))
    if not consistency:
        return report
    shift = shift_consistency(model, dataset, shifts=range(1, max_shift + 1), seed=seed)
    return report, shift


def _with_normalisation(source, info):
    """``source`` normalised as the model was trained, whatever the source's own statistics."""
    import dataclasses

    return dataclasses.replace(source, mean=tuple(info["mean"]), std=tuple(info["std"]))


def read_rgb(path):
    """An image file as float32 RGB in [0, 1]: grayscale becomes 3 channels, alpha is dropped."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype="float32") / 255.0
    except (OSError, SyntaxError) as error:
        raise ValueError(f"Cannot read the image {path}: {error}") from error


def predict(model_path, images, output_dir, scales=(1.0,), flip=False, info_path=None,
            alpha=0.5):
    """Writes, for each image file, ``<stem>_mask.png`` (a palette PNG whose pixel values are
    the class ids) and ``<stem>_overlay.png`` (the coloured mask over the image). Returns the
    written paths."""
    from keras_drn.evaluation import multi_scale_predict
    from keras_drn.visualize import colorize, palette, save_png

    if not images:
        raise ValueError("No images given to predict.")
    _check_model_path(model_path)
    info = read_info(model_path, info_path)
    model = load_segmenter(model_path)
    mean, std = np.array(info["mean"], "float32"), np.array(info["std"], "float32")
    os.makedirs(output_dir, exist_ok=True)
    written = []
    colours = palette(info["num_classes"])
    for path in images:
        picture = read_rgb(path)
        labels = multi_scale_predict(model, (picture - mean) / std, scales=scales, flip=flip)
        stem = pathlib.Path(path).stem
        mask_path = os.path.join(output_dir, f"{stem}_mask.png")
        mask = Image.fromarray(labels.astype("uint8"), mode="P")
        mask.putpalette(colours.reshape(-1).tolist())
        _write_atomically(mask_path, lambda temporary: mask.save(temporary, format="PNG"))
        overlay = (1 - alpha) * 255 * picture + alpha * colorize(labels, info["num_classes"])
        overlay_path = os.path.join(output_dir, f"{stem}_overlay.png")
        save_png(overlay.round().astype("uint8"), overlay_path)
        written += [mask_path, overlay_path]
    return written
