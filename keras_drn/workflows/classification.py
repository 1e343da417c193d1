"""Fine-tune a DRN image classifier, score it, and write a submission: the Kaggle workflow
behind ``keras-drn train --task classification`` and ``examples/finetune_classification.py``.

The classifier takes raw RGB images on the 0-255 scale: its first layer, ``preprocessing``,
normalises them with the mean/std its backbone weights were trained with (ImageNet's for the
official checkpoints), so ``model.predict(raw_images)`` is right wherever the model goes.
Training is two phases (Keras's transfer-learning guide): the head alone on a frozen backbone
(whose BatchNormalization then runs in inference mode), then the whole network at a lower
learning rate. A run folder holds:

- ``best.keras``: the best epoch by validation accuracy over both phases (written atomically
  at each improvement); ``model.keras``: the trained model with those best weights;
- ``info.json``: ``task`` ("classification"), ``class_names``, ``image_size``, the backbone and
  the normalisation; ``log.csv``: one row per epoch of both phases;
- ``confusion_matrix.png``: the validation confusion matrix.
"""

import csv
import dataclasses
import io
import json
import os
import pathlib
import time

import keras
import numpy as np
from PIL import Image, ImageDraw

from keras_drn import atomic
from keras_drn.workflows import precision
from keras_drn.workflows import runs
from keras_drn.workflows.record import ClassificationRun
from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.data.registry import CLASSIFICATION_SOURCES
from keras_drn.models import classifier as models_classifier
from keras_drn.models.classifier import set_backbone_trainable

DATA_HELP = CLASSIFICATION_SOURCES.help()


def build_classifier(num_classes, backbone="drn_d_22", weights=None, mean=None, std=None,
                     dropout=0.0, input_shape=(None, None, 3), name=None,
                     include_preprocessing=True):
    """``keras_drn.build_classifier`` (``keras_drn.models.classifier``) for this workflow,
    whose models always take raw 0-255 RGB: ``include_preprocessing`` defaults to ``True``
    (the weights' statistics, else ImageNet's, which ``info.json`` records)."""
    return models_classifier.build_classifier(
        num_classes, backbone, weights, mean, std, dropout, input_shape, name,
        include_preprocessing=include_preprocessing)


def load_data(spec, val_fraction=0.2, image_dir=None, size=32, seed=0, on_error="skip"):
    """``(train, val)`` ``ClassificationData`` of the source named by ``spec`` (see
    ``DATA_HELP``; ``keras_drn.data.load_classification``); the folder, CSV and TFDS sources
    are split by ``seed``."""
    from keras_drn.data import load_classification

    return load_classification(spec, val_fraction, image_dir, size, seed, on_error)


def _compile(model, learning_rate, weight_decay):
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def count_trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def train(**kwargs):
    """Fine-tunes a DRN classifier in two phases and scores it on the validation split.

    The arguments are the fields of ``keras_drn.workflows.record.ClassificationRun`` (their
    defaults and meaning are there); an unknown one is a TypeError.

    Phase 1 trains the new head for ``head_epochs`` on the frozen backbone at
    ``learning_rate``; phase 2 trains everything for up to ``epochs`` at
    ``finetune_learning_rate``. Both use AdamW, sparse cross-entropy and early stopping on
    validation accuracy (``patience`` epochs); the best epoch over both is kept. The run
    folder (``keras_drn.workflows.runs``) is safe to kill: a rerun resumes in the phase and
    epoch where it stopped; a complete run is not trained again; another run's folder is
    refused unless ``overwrite``.

    Args (some):
        data: see ``DATA_HELP``; ``image_dir`` is the image folder of a CSV.
        backbone_weights: ``None``, ``"imagenet"`` or a weights file for the backbone.
        image_size: side of the square training and evaluation images.
        train_bn: let BatchNormalization learn in phase 2; default (``None``): only for a
            randomly initialised backbone (pretrained statistics are better than those of
            small fine-tuning batches).
        mixed_precision: ``"auto"`` (``keras_drn.workflows.precision.auto_policy``:
            mixed_bfloat16 on GPUs with bfloat16 tensor cores and, on TensorFlow, on CPUs with
            AMX-BF16; mixed_float16 on older GPUs; float32 elsewhere), ``True``
            (mixed_float16), ``False`` (float32) or a policy name (``"mixed_bfloat16"``).
            ``"auto"`` keeps a global policy other than float32 that the caller set. The
            policy is global and stays set afterwards.
        crop_scale, color_jitter, rand_augment: the training augmentation
            (``keras_drn.data.classification_pipeline``; ``RandAugment`` is slow to build).
        tensorboard: also Keras's TensorBoard logs in ``OUTPUT_DIR/tensorboard``.

    Returns:
        ``(model, report)``: the model with the best weights and its
        ``ClassificationReport`` on the validation split (flip test-time augmentation).
    """
    return train_run(ClassificationRun.from_kwargs("train", **kwargs))


train.__signature__ = ClassificationRun.signature()


def train_run(record):
    """``train`` of a ``ClassificationRun``."""
    from keras_drn import data as data_lib

    runs.check_tensorboard(record.tensorboard)
    precision.apply(record.mixed_precision)
    run = runs.RunFolder(record.output_dir)
    keras.utils.set_random_seed(record.seed)
    train_data, val_data = load_data(record.data, record.val_fraction, record.image_dir,
                                     record.image_size, record.seed)
    val_set = data_lib.classification_pipeline(val_data, record.batch_size, training=False,
                                               image_size=record.image_size, cache=True)
    record = dataclasses.replace(
        record, num_classes=train_data.num_classes,
        class_names=tuple(train_data.class_names), mean=IMAGENET_MEAN, std=IMAGENET_STD,
        dtype_policy=keras.config.dtype_policy().name, processes=1)
    with run.lock():
        info = run.start(record.to_json(), overwrite=record.overwrite)
        state = runs.read_state(run.state_dir)
        if run.model_path.exists() and state and state.get("finished"):
            return _complete(run, info, train_data, val_set)
        model = build_classifier(train_data.num_classes, record.backbone,
                                 record.backbone_weights, dropout=record.dropout)
        print(f"{model.name}: {model.count_params():,} parameters, backend "
              f"{keras.backend.backend()}, {info['dtype_policy']}; {train_data.size} training "
              f"and {val_data.size} validation images of {train_data.name}"
              + (f" ({len(train_data.skipped)} unreadable skipped)" if train_data.skipped
                 else "") + f"; classes: {', '.join(train_data.class_names)}.")
        start = time.time()
        train_set = data_lib.classification_pipeline(
            train_data, record.batch_size, training=True, image_size=record.image_size,
            crop_scale=record.crop_scale, color_jitter=record.color_jitter,
            rand_augment=record.rand_augment, seed=record.seed)
        best = _phases(run, record, model, train_set, val_set, state)
        elapsed = time.time() - start
        report, confusion_path = _finish(run, info, model, val_set, train_data, best)
    print(f"trained for {elapsed:.0f} s; best validation accuracy "
          f"{float('nan') if best is None else best:.4f}")
    print(f"validation (flip test-time augmentation):\n{report.table}")
    print(f"wrote {run.model_path} and {confusion_path}")
    return model, report


def _complete(run, info, train_data, val_set):
    """A rerun of a complete run: nothing trains; the model is scored again."""
    print(f"{run.path} is a complete run ({info['epochs_done']} epochs): nothing to "
          "train. Pass --overwrite to start over.")
    model = load_classifier(run.model_path)
    report = evaluate_classifier(model, val_set, train_data.class_names, tta=True)
    run.finish(info)
    print(f"validation (flip test-time augmentation):\n{report.table}")
    return model, report


def _phases(run, record, model, train_set, val_set, state):
    """Fits the head alone, then the whole network, from where the run's state stopped;
    the best monitored score (``None`` when no epoch ran)."""
    phases = [(1, False, 0, record.head_epochs, record.learning_rate),
              (2, True, record.head_epochs, record.head_epochs + record.epochs,
               record.finetune_learning_rate)]
    resume_phase = state.get("phase", 1) if state else 1
    checkpoint = None
    for phase, trainable, first, last, rate in phases:
        if last <= first or phase < resume_phase:
            continue
        bn = record.backbone_weights is None if record.train_bn is None else record.train_bn
        set_backbone_trainable(model, trainable, train_bn=bn)
        _compile(model, rate, record.weight_decay)  # recompile: the trainables changed
        what = "head only, backbone frozen" if not trainable else (
            "whole network" + ("" if bn else ", BatchNormalization frozen"))
        print(f"phase {phase}: {what}, {count_trainable(model):,} trainable parameters, "
              f"learning rate {rate:g}")
        checkpoint = runs.RunCheckpoint(run.path, monitor="val_accuracy", mode="max",
                                        patience=record.patience, phase=phase)
        callbacks = [checkpoint]
        if record.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(run.path / runs.TENSORBOARD)))
        model.fit(train_set, validation_data=val_set, initial_epoch=first, epochs=last,
                  verbose=record.verbose, callbacks=callbacks,
                  shuffle=False)  # the pipeline shuffles
        if checkpoint.restored_epoch:
            print(f"phase {phase} resumed after epoch {checkpoint.restored_epoch}")
    return checkpoint.best if checkpoint is not None else None


def _finish(run, info, model, val_set, train_data, best):
    """Keeps the best epoch's weights, saves the model, scores it, draws the confusion
    matrix and marks the run complete; ``(report, confusion_path)``."""
    if run.best_path.exists():  # the best epoch over both phases (its weights only: its
        model.set_weights(runs.load_model(run.best_path).get_weights())  # optimizer differs
    atomic.write_atomically(run.model_path, model.save, "run")
    report = evaluate_classifier(model, val_set, train_data.class_names, tta=True)
    confusion_path = run.path / "confusion_matrix.png"
    save_confusion_matrix(report.confusion, report.class_names, confusion_path)
    state = runs.read_state(run.state_dir) or {}
    atomic.write_json(run.state_dir / "state.json", dict(state, finished=True), "run")
    run.finish(dict(info, epochs_done=state.get("epoch", 0)), val_accuracy=best)
    return report, confusion_path


@dataclasses.dataclass(frozen=True)
class ClassificationReport:
    """Scores of a classifier: ``confusion`` (rows = truth, columns = prediction), per-class
    ``precision`` and ``recall`` (NaN where undefined), overall ``accuracy``."""

    confusion: np.ndarray
    class_names: tuple

    @property
    def accuracy(self):
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    @property
    def precision(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / self.confusion.sum(axis=0)

    @property
    def recall(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.confusion) / self.confusion.sum(axis=1)

    @property
    def table(self):
        width = max(10, *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}} {'precision':>9} {'recall':>9} {'images':>7}"]
        for name, p, r, n in zip(self.class_names, self.precision, self.recall,
                                 self.confusion.sum(axis=1)):
            lines.append(f"{name:<{width}} {100 * p:>9.1f} {100 * r:>9.1f} {n:>7d}")
        lines.append(f"{'accuracy':<{width}} {100 * self.accuracy:>9.2f}"
                     f" {'':>9} {self.confusion.sum():>7d}")
        return "\n".join(lines)


def predict_probabilities(model, images, tta=True):
    """Class probabilities ``(batch, classes)`` of raw images ``(batch, H, W, 3)`` (0-255);
    with ``tta`` the mean over the image and its horizontal flip."""
    images = np.asarray(images, "float32")
    probabilities = keras.ops.convert_to_numpy(model.predict_on_batch(images))
    if tta:
        flipped = keras.ops.convert_to_numpy(model.predict_on_batch(
            np.ascontiguousarray(images[:, :, ::-1])))
        probabilities = (probabilities + flipped) / 2
    return np.asarray(probabilities, "float32")


def evaluate_classifier(model, dataset, class_names, tta=True):
    """Scores ``model`` on batches ``(images, labels)`` of ``dataset`` (raw images); returns
    a ``ClassificationReport``."""
    from keras_drn.evaluation import confusion_matrix

    labels, predictions = [], []
    for images, batch_labels in dataset:
        predictions.append(np.argmax(predict_probabilities(model, images, tta), axis=-1))
        labels.append(np.asarray(batch_labels))
    confusion = confusion_matrix(np.concatenate(labels), np.concatenate(predictions),
                                 len(class_names))
    return ClassificationReport(confusion, tuple(class_names))


def evaluate(model_path, data=None, split="val", tta=False, consistency=False, max_shift=8,
             info_path=None, image_dir=None, val_fraction=None, seed=None, batch_size=32):
    """Scores a saved classification run on ``split`` (``"train"`` or ``"val"``) of ``data``
    (see ``DATA_HELP``), split as in training (``data``, ``image_dir``, ``val_fraction`` and
    ``seed`` default to the run's, from its ``info.json``).

    Images are fed raw (0-255), as the model normalises them itself; the image size and class
    names come from the run's ``info.json``. Returns ``(report, shift)``: a
    ``ClassificationReport`` and, with ``consistency``, the top-1 shift consistency
    (``keras_drn.evaluation.consistency.classification_consistency``, random shifts up to
    ``max_shift`` pixels), else ``None``.
    """
    from keras_drn import data as data_lib
    from keras_drn.evaluation.consistency import classification_consistency

    info = read_info(model_path, info_path)
    recorded = ClassificationRun.from_json(info)
    data = recorded.data if data is None else data
    image_dir = recorded.image_dir if image_dir is None else image_dir
    val_fraction = recorded.val_fraction if val_fraction is None else val_fraction
    seed = recorded.seed if seed is None else seed
    model = load_classifier(model_path)
    splits = dict(zip(("train", "val"), load_data(data, val_fraction, image_dir,
                                                  info["image_size"], seed)))
    if split not in splits:
        raise ValueError(f"split must be 'train' or 'val' for a classifier; received {split!r}.")
    source = splits[split]
    if tuple(source.class_names) != tuple(info["class_names"]):
        raise ValueError(f"{data!r} has classes {list(source.class_names)}, the model "
                         f"{info['class_names']}: evaluate on data with the model's classes.")
    dataset = data_lib.classification_pipeline(source, batch_size, training=False,
                                               image_size=info["image_size"], cache=True)
    report = evaluate_classifier(model, dataset, info["class_names"], tta=tta)
    shift = None
    if consistency:
        shift = classification_consistency(model, dataset, max_shift=max_shift, seed=seed,
                                           batch_size=batch_size)
    return report, shift


def save_confusion_matrix(confusion, class_names, path, cell=48):
    """Writes the confusion matrix as a PNG: rows = truth, columns = prediction, each cell
    shaded by its share of the row and labelled with its count."""
    from keras_drn.evaluation.visualize import save_png

    confusion = np.asarray(confusion)
    n = len(class_names)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.nan_to_num(confusion / confusion.sum(axis=1, keepdims=True))
    margin = 8 + 7 * max(len(str(c)) for c in class_names)
    image = Image.new("RGB", (margin + n * cell + 4, margin + n * cell + 16), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 2), "prediction ->", fill="black")
    for i, name in enumerate(class_names):
        draw.text((4, margin + i * cell + cell // 2 - 5), str(name), fill="black")
        draw.text((margin + i * cell + 2, margin - 12), str(name)[: cell // 7], fill="black")
        for j in range(n):
            level = int(255 * (1 - share[i, j]))
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(level, level, 255),
                           outline="gray")
            draw.text((x + 4, y + cell // 2 - 5), str(int(confusion[i, j])),
                      fill="black" if share[i, j] < 0.6 else "white")
    save_png(np.asarray(image), path, overwrite=True)  # a run's picture (keras_drn.workflows.runs)
    return path


def is_classifier_run(model_path, info_path=None):
    """Whether the ``info.json`` of ``model_path``'s run (or ``info_path``) is a classifier's."""
    return runs.task_of(model_path, info_path) == "classification"


def read_info(model_path, info_path=None):
    """The ``info.json`` of a classification run (beside ``model_path`` by default)."""
    _, info = runs.run_of(model_path, info_path)
    if info.get("task") != "classification":
        raise ValueError(f"{model_path}'s run is not a classification run.")
    return info


def load_classifier(model_path):
    """Loads a ``.keras`` classifier for inference, checked first, with Keras's safe_mode on,
    its BatchNormalization folded into the convolutions (``runs.load_for_inference``)."""
    return runs.load_for_inference(model_path)


def _resized(path, image_size):
    """An image file as float32 RGB (0-255) centre-cropped and resized as in evaluation."""
    from keras_drn.data.images import read_image

    image = read_image(path).astype("float32")
    if image_size is None:
        return image
    resize = keras.layers.Resizing(image_size, image_size, crop_to_aspect_ratio=True)
    return np.asarray(keras.ops.convert_to_numpy(resize(image)), "float32")


def write_submission(model, test_dir, path, class_names, image_size, probabilities=False,
                     tta=True, batch_size=32, overwrite=False, option="--submission"):
    """Predicts every image of ``test_dir`` and writes a submission CSV (atomically).

    Rows are ``id`` (the file name without its extension) and ``label`` (the predicted class
    name) or, with ``probabilities``, one probability column per class. Every test image must
    be readable: a submission cannot leave one out. Ids that start like a spreadsheet formula
    are written verbatim, with one warning (``keras_drn.workflows.submission.warn_formula_ids``).

    Raises:
        ValueError: the folder is missing or has no images, or an image is unreadable (named).
        FileExistsError: ``path`` exists, keras_drn did not write it and ``overwrite`` is
            False (checked before predicting; ``option`` is the flag named).
    """
    from keras_drn.data.classification import _check_readable, list_images
    from keras_drn.workflows.submission import warn_formula_ids

    atomic.check_replaceable([path], overwrite, option)
    paths = list_images(test_dir, "test folder")
    if os.path.realpath(path) in {os.path.realpath(p) for p in paths}:
        raise ValueError(f"{option} {path} is one of the test images: choose another file for "
                         "the CSV.")
    _check_readable(paths, [0] * len(paths), "raise", repr(os.fspath(test_dir)))
    rows = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images = np.stack([_resized(p, image_size) for p in chunk])
        rows.append(predict_probabilities(model, images, tta))
    scores = np.concatenate(rows)
    ids = [pathlib.Path(p).stem for p in paths]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if probabilities:
        writer.writerow(["id", *class_names])
        writer.writerows([i, *(f"{v:.6f}" for v in row)] for i, row in zip(ids, scores))
    else:
        writer.writerow(["id", "label"])
        writer.writerows([i, class_names[k]] for i, k in zip(ids, np.argmax(scores, -1)))
    atomic.write_text(path, text.getvalue(), "submission", overwrite, option)
    warn_formula_ids(ids, path)
    return scores


def predict(model_path, test_dir, submission, probabilities=False, tta=True, info_path=None,
            overwrite=False):
    """``write_submission`` for a saved run: the model file and its ``info.json``."""
    info = read_info(model_path, info_path)
    atomic.check_replaceable([submission], overwrite, "--submission")
    model = load_classifier(model_path)
    write_submission(model, test_dir, submission, info["class_names"], info["image_size"],
                     probabilities=probabilities, tta=tta, overwrite=overwrite)
    return submission


def activation_map_model(model):
    """Class activation maps of a ``build_classifier`` model: its ``fc`` applied at every
    position of the backbone's map (DRN paper, section 4), softmax over classes.

    Input: raw images ``(batch, H, W, 3)``; outputs ``[probabilities, maps]``: the model's
    ``(batch, classes)`` and the maps ``(batch, ceil(H / 8), ceil(W / 8), classes)``, float32.
    """
    try:
        features = model.get_layer("avgpool").input  # the backbone's map in this graph
        fc = model.get_layer("fc")
    except ValueError as error:
        raise ValueError(f"Model {model.name!r} is not a keras_drn.workflows.classification classifier (it "
                         "needs layers 'avgpool' and 'fc'); for a plain DRN classifier use "
                         "keras_drn.models.localization.activation_map_model.") from error
    maps = keras.layers.Softmax(dtype="float32", name="cam_softmax")(fc(features))
    return keras.Model(model.input, [model.output, maps], name=f"{model.name}_cam")


def save_class_activation_map(model, image_path, output_path, class_names, image_size=None,
                              class_id=None, threshold=0.5, scale=8):
    """Writes a PNG of an image beside its class activation map for ``class_id`` (default:
    the predicted class), with the paper's box (``keras_drn.models.localization.box_from_map``)
    drawn on the map when there is one. Returns ``(class_id, probability, box)``; the box is
    in pixels of the (resized) image."""
    from keras_drn.models.localization import box_from_map, heatmap_overlay
    from keras_drn.evaluation.visualize import save_png

    image = _resized(image_path, image_size)
    probabilities, maps = activation_map_model(model).predict_on_batch(image[None])
    probabilities = np.asarray(keras.ops.convert_to_numpy(probabilities))[0]
    maps = np.asarray(keras.ops.convert_to_numpy(maps))[0]
    if class_id is None:
        class_id = int(np.argmax(probabilities))
    if not 0 <= class_id < len(class_names):
        raise ValueError(f"class_id must be in [0, {len(class_names)}); received {class_id}.")
    overlay = heatmap_overlay(image / 255.0, maps[..., class_id])
    box = box_from_map(maps, class_id, threshold, image_size=image.shape[:2])
    picture = Image.fromarray(np.concatenate(
        [np.round(image).astype("uint8"), overlay], axis=1))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    if box is not None:
        x0, y0, x1, y1 = box
        offset = image.shape[1]
        draw.rectangle([(x0 + offset) * scale, y0 * scale, (x1 + offset) * scale - 1,
                        y1 * scale - 1], outline=(255, 255, 255), width=2)
    draw.text((4, 4), f"{class_names[class_id]} {probabilities[class_id]:.2f}", fill="white")
    save_png(np.asarray(picture), output_path)
    return class_id, float(probabilities[class_id]), box
