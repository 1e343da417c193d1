"""Train, evaluate and run a DRN segmenter: the workflow of the reference's ``segment.py``
(Yu, Koltun, Funkhouser, CVPR 2017; github fyu/drn) behind ``keras-drn train|evaluate|predict``.

The run folder (``keras_drn.workflows.runs``) holds what ``predict`` and ``evaluate`` need: the models
take raw 0-255 RGB and carry the normalisation they were trained with (the data's statistics,
as the reference's ``info.json``), ``info.json`` records the data, size, classes and
architecture, and an interrupted ``train`` with the same arguments resumes at its first
unfinished epoch.
"""

import contextlib
import dataclasses
import os
import pathlib
import time

import keras
import numpy as np
from PIL import Image

from keras_drn import atomic
from keras_drn.data.registry import SEGMENTATION_SOURCES
from keras_drn.workflows import distribute
from keras_drn.workflows import precision
from keras_drn.workflows import runs
from keras_drn.workflows.record import SegmentationRun

SYNTHETIC_SIZE = 64  # side of the synthetic scenes when a run does not give size=

DATA_HELP = SEGMENTATION_SOURCES.help()
# spec prefix -> pixel order of the CSV's RLEs
RLE_SPECS = {source.prefix: dict(source.keywords)["order"]
             for source in SEGMENTATION_SOURCES.sources if "order" in dict(source.keywords)}


def load_data(spec, split, num_classes=None, size=64, seed=0, val_fraction=None,
              resize=False, check=True):
    """A ``keras_drn.data.SegmentationData`` for ``split`` of the source named by ``spec``
    (``keras_drn.data.load_segmentation``; ``DATA_HELP``), its files checked unless
    ``check=False`` (every bad one named in one ValueError).

    ``size`` is the synthetic scenes' side; with ``resize`` it also resizes every other
    source's examples to ``size`` x ``size`` (images bilinear, masks nearest), which without
    it keep their files' sizes. ``val_fraction`` holds out a seeded part (``seed``) of a
    folder's training files as its ``"val"`` split, for folders without one."""
    from keras_drn.data import load_segmentation

    return load_segmentation(spec, split, num_classes=num_classes,
                             size=size if resize or spec == "synthetic" else None, seed=seed,
                             val_fraction=val_fraction, check=check)


def _rle_folder(folder, split, num_classes, order):
    from keras_drn.data import loaders

    return loaders.segmentation_rle(os.fspath(folder), split=split, num_classes=num_classes,
                                    size=None, seed=0, val_fraction=None, mask_values=None,
                                    check=True, order=order)


def load_segmenter(model_path):
    """Loads a ``.keras`` segmenter for inference, checked first (an empty or truncated file
    is named as such), with Keras's safe_mode on (no code from the file runs), its
    BatchNormalization folded into the convolutions (``runs.load_for_inference``)."""
    return runs.load_for_inference(model_path)


def _check_num_classes(num_classes, where=None):
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"{where + ' has ' if where else ''}num_classes={num_classes}: give 1 "
                         "(a binary mask: one logit per pixel) or the number of classes.")


def _check_class_names(class_names, num_classes, source):
    """ValueError unless ``class_names`` (when given) names each of ``num_classes`` classes
    (``source``: where that count comes from)."""
    if class_names is not None and num_classes is not None and (
            len(class_names) != num_classes):
        raise ValueError(f"class_names= gives {len(class_names)} names but {source}: give "
                         "one name per class.")


def train(**kwargs):
    """Trains a ``DRNSegmenter`` with the reference recipe and scores it on the val split.

    The arguments are the fields of ``keras_drn.workflows.record.SegmentationRun`` (their
    defaults, choices and meaning are there); an unknown one is a TypeError.

    The model takes raw 0-255 RGB and carries the data's normalisation (``preprocessing``
    layer). Returns ``(model, report)``: the final model and its
    ``evaluation.SegmentationReport`` on the validation split. Calling it again with the same
    arguments and ``output_dir`` after an interruption (SIGKILL included) resumes at the first
    unfinished epoch; on a complete run it trains nothing and says so (a larger ``epochs``
    extends it); a folder that holds another run is refused unless ``overwrite``.
    ``mixed_precision`` is ``keras_drn.workflows.classification.train``'s
    (``keras_drn.workflows.precision``); the losses and the logits stay float32.
    ``tensorboard``: also Keras's TensorBoard logs in ``OUTPUT_DIR/tensorboard``;
    ``class_names``: the names of the classes (default: the data's).

    Several processes (JAX; ``coordinator``, ``num_processes``, ``process_id``, or the
    launcher's environment, see ``keras_drn.workflows.distribute.initialize``;
    ``heartbeat_timeout`` and ``init_timeout`` are its): every process runs
    this with the same arguments; ``batch_size`` is the global batch, each process trains on
    ``batch_size / num_processes`` of it and BatchNormalization sees the whole of it. Only
    process 0 writes the run folder and scores the final model (the others return
    ``(model, None)``, or ``(None, None)`` for a complete run); all read its resume state,
    so ``output_dir`` must be one folder they share. The process count is recorded
    (``info.json`` "processes") but is not part of the run's identity: the steps are those
    of one process with the same global batch, so a run may resume with another count. The
    validation score of each epoch leaves out the last partial global batch (the final
    report scores every example).

    K-fold (``keras_drn.workflows.folds``): with ``folds=K`` and ``fold=I`` the training split
    is cut into K seeded folds (``seed``; ``stratify="empty"`` balances empty and non-empty
    masks, ``group_by`` names a column of a CSV source whose values never straddle two
    folds); the run trains on the other folds, validates on fold I, and ends by writing
    ``oof.npz``: the fold's ids, its flip-TTA probabilities and masks (a rerun of the complete
    run writes it when missing). ``train_folds`` runs every fold.
    """
    return train_run(SegmentationRun.from_kwargs("train", **kwargs))


train.__signature__ = SegmentationRun.signature()


def train_run(record):
    """``train`` of a ``SegmentationRun``."""
    from keras_drn import data as data_lib

    _check_options(record)
    cluster = _join_job(record)
    run = runs.RunFolder(record.output_dir)
    keras.utils.set_random_seed(record.seed)
    train_data, val_data = _training_data(record)
    record = _learned(record, train_data, cluster)
    val_set = data_lib.segmentation_pipeline(
        val_data, 1 if record.crop_size is None else record.batch_size, training=False)
    with run.session(record.to_json(), overwrite=record.overwrite) as info:
        if info["epochs_done"] >= record.epochs and run.model_path.exists():
            return _complete(run, info, record, val_data, val_set)
        run.check_precision(info, keras.config.dtype_policy().name)  # its epochs' precision
        if distribute.is_chief():  # an earlier model's
            (run.path / _folds().OOF).unlink(missing_ok=True)
        model = _fit(run, info, record, train_data, val_data, val_set, cluster)
        if not distribute.is_chief():
            return model, None
        return _finish(run, info, record, model, val_data, val_set, cluster)


def _folds():
    from keras_drn.workflows import folds

    return folds


def _check_options(record):
    """ValueError naming the argument for options that cannot work together."""
    _check_num_classes(record.num_classes)
    runs.check_tensorboard(record.tensorboard)
    _check_class_names(record.class_names, record.num_classes,
                       f"num_classes={record.num_classes}")
    if record.lr_mode not in ("poly", "step"):
        raise ValueError(f"lr_mode must be 'poly' or 'step'; received {record.lr_mode!r}.")
    if record.optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw'; received {record.optimizer!r}.")
    _folds().check_folds(record.folds, record.fold, record.stratify, record.group_by)
    if record.fold == "all":
        raise ValueError("fold='all' trains every fold: call train_folds (keras-drn train "
                         "--fold all).")


def _join_job(record):
    """Joins the job of several processes (if any) and sets the dtype policy; the Cluster."""
    cluster = distribute.resolve_cluster(record.coordinator, record.num_processes,
                                         record.process_id)
    if record.batch_size % cluster.num_processes:
        raise ValueError(f"batch_size={record.batch_size} (the global batch) does not divide "
                         f"over {cluster.num_processes} processes: give a multiple of "
                         f"{cluster.num_processes}.")
    distribute.initialize(*cluster[:3], heartbeat_timeout=record.heartbeat_timeout,
                          init_timeout=record.init_timeout)
    # Only now: "auto" asks the backend for its devices, and JAX refuses to join a job
    # once anything has touched the backend.
    precision.apply(record.mixed_precision)
    return cluster


def _training_data(record):
    """``(train, val)`` ``SegmentationData``: the data's splits, or a fold's."""
    if record.folds is not None and record.val_fraction is not None:
        raise ValueError("give folds= or val_fraction=, not both: k-fold holds out each fold "
                         "of the training files in turn.")
    options = _data_options(record.data, record.size, record.val_fraction)
    train_data = load_data(record.data, "train", record.num_classes, seed=record.seed, **options)
    if record.folds is None:
        val_data = load_data(record.data, "val", record.num_classes, seed=record.seed, **options)
    else:
        train_data, val_data = _folds().split(
            train_data, record.folds, record.fold, seed=record.seed, stratify=record.stratify,
            group_by=record.group_by)
    _check_num_classes(train_data.num_classes, str(record.data))
    _check_class_names(record.class_names, train_data.num_classes,
                       f"{record.data!r} has {train_data.num_classes} classes")
    if train_data.size < record.batch_size:
        raise ValueError(f"batch_size={record.batch_size} exceeds the {train_data.size} "
                         f"training examples of {train_data.name}.")
    return train_data, val_data


def _data_options(data, size, val_fraction):
    """``load_data``'s ``size``, ``resize`` and ``val_fraction`` for a run's ``size`` and
    ``val_fraction``: the synthetic scenes' side (default 64), or the side image files are
    resized to (``None``: their own sizes)."""
    return {"size": SYNTHETIC_SIZE if size is None else size,
            "resize": size is not None and data != "synthetic", "val_fraction": val_fraction}


def _learned(record, train_data, cluster):
    """The record as ``info.json`` holds it: the data's classes and statistics, the scene
    size and crop of the synthetic scenes only, the policy in force."""
    synthetic = record.data == "synthetic"
    return dataclasses.replace(
        record, num_classes=train_data.num_classes,
        class_names=tuple(record.class_names or train_data.class_names),
        size=(record.size or SYNTHETIC_SIZE) if synthetic else record.size,
        crop_size=((record.size or SYNTHETIC_SIZE) if synthetic and record.crop_size is None
                   else record.crop_size),
        mean=tuple(float(v) for v in train_data.mean),
        std=tuple(float(v) for v in train_data.std), processes=cluster.num_processes,
        dtype_policy=keras.config.dtype_policy().name)


def _complete(run, info, record, val_data, val_set):
    """A rerun of a complete run: nothing trains; the model is scored again."""
    from keras_drn.evaluation import evaluate_segmenter

    if not distribute.is_chief():
        return None, None
    print(f"{run.path} is a complete run ({info['epochs_done']} epochs, as asked): "
          "nothing to train. Pass a larger --epochs to train further, or --overwrite "
          "to start over.")
    model = load_segmenter(run.model_path)
    report = evaluate_segmenter(model, val_set, info["num_classes"], class_names=(
        display_classes(info["num_classes"], info["class_names"])[1]), name=val_data.name)
    oof_path = run.path / _folds().OOF
    if record.folds is not None and not oof_path.exists():
        _write_oof(model, val_data, oof_path, record.folds, record.fold)
    run.finish(info)
    print(f"validation IoU (%) of {run.model_path}:\n{report.table}")
    return model, report


def _optimizer(record, steps_per_epoch):
    """The optimizer and learning rate schedule the record asks for."""
    from keras_drn.workflows.training import poly_schedule, reference_optimizer, step_schedule

    if record.lr_mode == "poly":
        schedule = poly_schedule(record.learning_rate, record.epochs * steps_per_epoch)
    else:
        schedule = step_schedule(record.learning_rate, steps_per_epoch, record.step)
    if record.optimizer == "sgd":
        return reference_optimizer(schedule, momentum=record.momentum,
                                   weight_decay=record.weight_decay)
    return keras.optimizers.AdamW(schedule, weight_decay=record.weight_decay)


def _callbacks(run, record, num_classes):
    """The run folder's checkpoint callbacks, and TensorBoard's when asked."""
    from keras_drn.workflows.training import monitored_metric, training_callbacks

    callbacks = training_callbacks(run.path, monitor=monitored_metric(num_classes))
    if record.tensorboard and distribute.is_chief():
        callbacks.append(keras.callbacks.TensorBoard(str(run.path / runs.TENSORBOARD)))
    return callbacks


def _fit(run, info, record, train_data, val_data, val_set, cluster):
    """Builds the segmenter and fits it (resuming the run's state); the trained model."""
    import keras_drn
    from keras_drn import data as data_lib
    from keras_drn.workflows.training import compile_segmenter

    train_set = data_lib.segmentation_pipeline(
        train_data, record.batch_size, training=True, crop_size=record.crop_size,
        scale=record.scale, rotate=record.rotate, flip=record.flip, seed=record.seed)
    with contextlib.ExitStack() as parallel:
        fit_val_set = val_set
        if cluster.num_processes > 1:
            parallel.enter_context(distribute.data_parallel())
            fit_val_set = _global_batches(val_set, val_data.size, record.batch_size
                                          if record.crop_size else cluster.num_processes)
        model = keras_drn.DRNSegmenter(
            record.backbone, num_classes=train_data.num_classes, head=record.head,
            context=record.context, anti_alias=record.anti_alias,
            upsampling=record.upsampling, backbone_weights=record.backbone_weights,
            include_preprocessing=True, mean=info["mean"], std=info["std"])
        compile_segmenter(model, train_data.num_classes,
                          optimizer=_optimizer(record, train_data.size // record.batch_size))
        print(f"{model.name}: {model.count_params():,} parameters, backend "
              f"{keras.backend.backend()}; {train_data.size} training and {val_data.size} "
              f"validation examples of {train_data.name}.")
        callbacks = _callbacks(run, record, train_data.num_classes)
        start = time.time()
        with distribute.peer_failures():
            model.fit(train_set, validation_data=fit_val_set, epochs=record.epochs,
                      shuffle=False, verbose=record.verbose if distribute.is_chief() else 0,
                      callbacks=callbacks)
        resumed = callbacks[0].restored_epoch
        print(f"trained for {time.time() - start:.0f} s"
              + (f" (resumed after epoch {resumed})" if resumed else ""))
    return model  # out of the job's data parallel distribution


def _finish(run, info, record, model, val_data, val_set, cluster):
    """Process 0: saves the model, scores it, draws the picture, writes the out-of-fold
    predictions and marks the run complete."""
    from keras_drn.evaluation import evaluate_segmenter, multi_scale_predict
    from keras_drn.evaluation.visualize import comparison_grid, save_png

    atomic.write_atomically(run.model_path, model.save, "run")
    if cluster.num_processes > 1:  # a copy on this process's devices alone, to score
        model = load_segmenter(run.model_path)
    num_classes, class_names = info["num_classes"], tuple(info["class_names"])
    shown, names = display_classes(num_classes, class_names)
    report = evaluate_segmenter(model, val_set, num_classes, class_names=names
                                if shown != num_classes else class_names, name=val_data.name)
    print(f"validation IoU (%) of {run.model_path}:")
    print(report.table)
    inputs, labels = next(iter(val_set.unbatch().batch(6)))
    inputs = np.asarray(inputs)
    predictions = multi_scale_predict(model, inputs, scales=(1.0,), flip=False)
    grid_path = run.path / "val_predictions.png"
    save_png(comparison_grid(inputs, np.asarray(labels), predictions, shown,
                             class_names=names), grid_path, overwrite=True)  # the run's
    if record.folds is not None:
        _write_oof(model, val_data, run.path / _folds().OOF, record.folds, record.fold)
    run.finish(dict(info, epochs_done=max(record.epochs, info["epochs_done"])),
               val_miou=report.miou, val_dice=float(report.dice[-1]))
    print(f"wrote {run.model_path} and {grid_path} (image | ground truth | prediction)")
    return model, report


def _global_batches(val_set, size, batch_size):
    """The validation set in whole global batches of ``batch_size``, as a multi-process
    ``fit`` needs (every process gets an equal slice of each); says what it leaves out."""
    if size % batch_size and distribute.is_chief():
        print(f"The validation score of each epoch leaves out the last {size % batch_size} "
              f"of {size} examples (a partial global batch of {batch_size}); the final "
              "report scores all of them.")
    return val_set.unbatch().batch(batch_size, drop_remainder=True)


def _write_oof(model, val_data, path, folds, fold):
    from keras_drn.workflows import folds as fold_lib

    ids, probabilities, masks = fold_lib.out_of_fold(model, val_data)
    fold_lib.write_oof(path, ids, probabilities, masks, folds, fold, overwrite=True)  # the run's
    print(f"wrote {path}: out-of-fold probabilities of the {len(ids)} images of fold "
          f"{fold}/{folds}")


def train_folds(folds=5, output_dir="runs/drn", min_sizes=(0,), fold="all", overwrite=False,
                **kwargs):
    """Trains every fold of a k-fold split: ``train(..., folds=folds, fold=I,
    output_dir=OUTPUT_DIR/fold-I)`` for I = 0 .. folds - 1 (``kwargs``: ``train``'s other
    arguments), then, for a binary run, searches the threshold (and the minimum component
    sizes ``min_sizes``) maximising the mean per-image Dice on the out-of-fold predictions
    of all folds (``keras_drn.workflows.folds.tune``), written to ``OUTPUT_DIR/threshold.json`` and
    printed. Rerunning it resumes the unfinished folds. Returns ``(reports, search)``: the
    folds' validation reports and the ``ThresholdSearch`` (``None`` for a multi-class run).
    ``overwrite``: ``train``'s, and also replace a ``threshold.json`` keras_drn did not write
    (checked before any fold trains).
    """
    from keras_drn.workflows import folds as fold_lib

    if fold != "all":
        raise ValueError(f"train_folds trains every fold (fold='all'); received fold={fold!r}: "
                         "call train(..., folds=K, fold=I) for one.")
    fold_lib.check_folds(folds, "all", kwargs.get("stratify"), kwargs.get("group_by"))
    threshold_path = pathlib.Path(output_dir) / fold_lib.THRESHOLD
    atomic.check_replaceable([threshold_path], overwrite, "--output-dir")
    reports, run_dirs = [], []
    for index in range(folds):
        print(f"fold {index}/{folds}:")
        run_dir = fold_lib.fold_dir(output_dir, index)
        model, report = train(output_dir=run_dir, folds=folds, fold=index, overwrite=overwrite,
                              **kwargs)
        reports.append(report)
        run_dirs.append(run_dir)
        binary = model is not None and model.output.shape[-1] == 1
        del model
    search = None
    if binary and distribute.is_chief():  # only process 0 writes
        search = fold_lib.tune(run_dirs, threshold_path, min_sizes=min_sizes,
                               overwrite=overwrite)
        print(f"{search}: wrote {threshold_path}")
    return reports, search


def evaluate(model_path, data=None, split="val", scales=(1.0,), flip=False, info_path=None,
             batch_size=1, size=None, seed=None, consistency=False, max_shift=8):
    """Scores a trained segmenter on ``split`` of ``data`` (single- or multi-scale).

    Images are fed raw (0-255): the model carries its normalisation. ``data`` defaults to
    the run's (``info.json``), and for the synthetic scenes ``size`` and ``seed`` too. Returns an
    ``evaluation.SegmentationReport``; with ``consistency=True`` a pair ``(report, shift)``
    where ``shift`` is a ``keras_drn.evaluation.consistency.ConsistencyReport``: for a segmenter the
    fraction of pixels whose label is unchanged under diagonal shifts of 1 to ``max_shift``
    pixels, for a classifier (a model with ``(batch, classes)`` output, outside a run folder;
    its report is ``None``) the fraction of images with the same top-1 class under two random
    shifts of up to ``max_shift`` pixels.
    """
    from keras_drn import data as data_lib
    from keras_drn.evaluation.consistency import output_rank, shift_consistency
    from keras_drn.evaluation import evaluate_segmenter

    runs.check_model_file(model_path)
    task = runs.task_of(model_path, info_path)
    if task == "classification":
        raise ValueError(f"{model_path} is a classification run: score it with "
                         "keras_drn.workflows.classification.evaluate, which keras-drn evaluate calls for "
                         "such runs.")
    info = None
    if task is not None or info_path is not None:
        _, info = runs.run_of(model_path, info_path)
    model = load_segmenter(model_path)
    classifier = output_rank(model) == 2
    if classifier and not consistency:
        raise ValueError(f"{model_path} is a classifier (output {tuple(model.output.shape)}): "
                         "IoU needs a segmenter; ask for its shift consistency instead "
                         "(consistency=True, keras-drn evaluate --consistency).")
    if info is None and not classifier:
        runs.RunFolder(pathlib.Path(model_path).parent).read_info()  # names what is missing
    if data is None:
        if info is None:
            raise ValueError(f"{model_path} has no run folder to read its data from: give "
                             "data= (the data spec to score on).")
        data = info["data"]
    size = (info or {}).get("size") if size is None else size
    seed = (info or {}).get("seed", 0) if seed is None else seed
    options = _data_options(data, size, (info or {}).get("val_fraction"))
    num_classes = None if info is None else info["num_classes"]
    if (info or {}).get("folds") and split == "val":  # a fold run: its held-out fold
        from keras_drn.workflows import folds as fold_lib

        _, source = fold_lib.split(load_data(data, "train", num_classes, seed=seed, **options),
                                   info["folds"], info["fold"], seed=info["seed"],
                                   stratify=info.get("stratify"), group_by=info.get("group_by"))
    else:
        source = load_data(data, split, num_classes, seed=seed, **options)
    if info is not None and source.num_classes != info["num_classes"]:
        raise ValueError(f"{data!r} has {source.num_classes} classes, the model "
                         f"{info['num_classes']}.")
    dataset = data_lib.segmentation_pipeline(source, batch_size, training=False)
    report = None
    if not classifier:
        report = evaluate_segmenter(model, dataset, info["num_classes"], scales=scales,
                                    flip=flip, class_names=display_classes(
                                        info["num_classes"], info.get("class_names"))[1],
                                    name=source.name)
    if not consistency:
        return report
    shift = shift_consistency(model, dataset, shifts=range(1, max_shift + 1), seed=seed)
    return report, shift


def output_names(images):
    """A distinct output stem per input path: the file stem, or where two inputs share one,
    their paths below the common folder (``a/photo.png`` -> ``a_photo``; ``photo.png`` and
    ``photo.jpg`` -> ``photo_png``, ``photo_jpg``). ValueError for a file given twice."""
    paths = [os.path.abspath(p) for p in images]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]} is given more than once.")
    stems = [pathlib.Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    common = os.path.commonpath([os.path.dirname(p) for p in paths])
    names = []
    for path, stem in zip(paths, stems):
        if stems.count(stem) == 1:
            names.append(stem)
            continue
        parts = pathlib.Path(os.path.relpath(path, common)).with_suffix("").parts
        names.append("_".join(parts))
    if len(set(names)) != len(names):
        names = ["_".join(pathlib.Path(os.path.relpath(p, common)).parts).replace(".", "_")
                 for p in paths]
    return names


def display_classes(num_classes, class_names):
    """``(classes, names)`` as pictures and masks show them: a binary run (one logit) as the
    two classes background and object."""
    if num_classes == 1:
        name = class_names[-1] if class_names else "object"
        return 2, ("background", "object" if name in (None, "class_0") else name)
    return num_classes, tuple(class_names or (f"class {i}" for i in range(num_classes)))


def predict(model_path, images, output_dir, scales=(1.0,), flip=False, info_path=None,
            alpha=0.5, threshold=0.5, min_size=0, submission=None, layout=None, order="F",
            overwrite=False):
    """Writes, for each image file, ``<name>_mask.png`` (a palette PNG whose pixel values are
    the class ids; a binary run's are 0/1) and ``<name>_overlay.png`` (the coloured mask over
    the image), ``<name>`` distinct per input (``output_names``). Returns the written paths.

    Args:
        model_path: a run's ``.keras`` file, or a list of them: an ensemble (the runs of the
            folds of a k-fold split, say), whose prediction is the mean of the members'
            probabilities (``keras_drn.workflows.folds.ensemble_probabilities``); ``info_path``
            applies to each.
        threshold: object probability above which a binary run labels a pixel 1.
        min_size: drop connected regions (4-connectivity) of a class smaller than this many
            pixels (``keras_drn.workflows.submission.remove_small_components``): they become
            background (0).
        submission: also write this CSV of run-length-encoded masks
            (``keras_drn.workflows.submission``): ``layout="image"`` (default for a binary run: one row
            ``ImageId,EncodedPixels`` per image, its object mask) or ``"image_class"``
            (default otherwise: ``ImageId_ClassId,EncodedPixels`` for every image and class
            1..C-1); ids are the output names; ``order`` "F" (column-major, Kaggle's usual)
            or "C".
        overwrite: replace existing files keras_drn did not write (``keras_drn.atomic.
            check_replaceable``; without it they are refused before anything is predicted).
            ``submission`` may never be one of ``images``.
    """
    from keras_drn.data.images import read_image
    from keras_drn.evaluation import multi_scale_predict
    from keras_drn.workflows.folds import ensemble_probabilities
    from keras_drn.workflows.submission import remove_small_components, write_submission
    from keras_drn.evaluation.visualize import colorize, palette, save_png

    if not images:
        raise ValueError("No images given to predict.")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1); received {threshold!r}.")
    members = ([model_path] if isinstance(model_path, (str, os.PathLike))
               else list(model_path))
    if not members:
        raise ValueError("No model given to predict with.")
    infos = []
    for member in members:
        runs.check_model_file(member)
        infos.append(runs.run_of(member, info_path)[1])
    info = infos[0]
    for member, other in zip(members[1:], infos[1:]):
        if (other["num_classes"], other.get("class_names")) != (
                info["num_classes"], info.get("class_names")):
            raise ValueError(f"{member} predicts {other['num_classes']} classes "
                             f"{other.get('class_names')}, {members[0]} "
                             f"{info['num_classes']} {info.get('class_names')}: an ensemble's "
                             "members must share their classes.")
    names = output_names(images)
    outputs = [os.path.join(output_dir, f"{name}_{kind}.png") for name in names
               for kind in ("mask", "overlay")]
    inputs = {os.path.realpath(p) for p in images}
    if submission is not None and os.path.realpath(submission) in inputs:
        raise ValueError(f"--submission {submission} is one of the images to predict: choose "
                         "another file for the CSV.")
    clobbered = sorted(inputs.intersection(map(os.path.realpath, outputs)))
    if clobbered:
        raise ValueError(f"{clobbered[0]} is an input image and would be replaced by an "
                         "output of the same name: choose another --output-dir.")
    atomic.check_writable(output_dir)
    atomic.check_replaceable(outputs, overwrite, "--output-dir")
    if submission is not None:
        atomic.check_replaceable([submission], overwrite, "--submission")
    models = [load_segmenter(member) for member in members]
    classes, _ = display_classes(info["num_classes"], info.get("class_names"))
    layout = layout or ("image" if info["num_classes"] == 1 else "image_class")
    written, rows = [], []
    colours = palette(classes)
    for path, name in zip(images, names):
        picture = read_image(path).astype("float32")
        if len(models) == 1:
            labels = multi_scale_predict(models[0], picture, scales=scales, flip=flip,
                                         threshold=threshold)
        else:
            probabilities = ensemble_probabilities(models, picture, scales=scales, flip=flip)
            labels = ((probabilities > threshold).astype("int64") if probabilities.ndim == 2
                      else np.argmax(probabilities, axis=-1))
        if min_size:
            kept = np.zeros_like(labels)
            for class_id in range(1, classes):
                region = remove_small_components(labels == class_id, min_size)
                kept[region.astype(bool)] = class_id
            labels = kept
        mask_path = os.path.join(output_dir, f"{name}_mask.png")
        mask = Image.fromarray(labels.astype("uint8"), mode="P")
        mask.putpalette(colours.reshape(-1).tolist())
        atomic.write_atomically(mask_path, lambda temporary: mask.save(temporary, format="PNG"),
                                overwrite=overwrite)
        overlay = (1 - alpha) * picture + alpha * colorize(labels, classes)
        overlay_path = os.path.join(output_dir, f"{name}_overlay.png")
        save_png(overlay.round().astype("uint8"), overlay_path, overwrite=overwrite,
                 option="--output-dir")
        written += [mask_path, overlay_path]
        if layout == "image":
            rows.append((name, (labels > 0).astype("uint8")))
        else:
            rows += [(name, c, (labels == c).astype("uint8")) for c in range(1, classes)]
    if submission is not None:
        write_submission(submission, rows, layout=layout, order=order, overwrite=overwrite)
        written.append(os.fspath(submission))
    return written


def ensemble(members, images, output_dir, threshold=None, min_size=None, flip=True,
             scales=(1.0,), submission=None, layout=None, order="F", alpha=0.5,
             overwrite=False):
    """The fold ensemble's ``predict``: masks (and a submission) from the mean of the
    probabilities of several runs, with flip TTA by default.

    Args:
        members: run folders (their ``model.keras``), ``.keras`` files, or folders holding
            ``fold-*`` run folders (``train_folds``' ``OUTPUT_DIR``), in any mix.
        threshold, min_size: default: those of the ``threshold.json`` (``keras_drn.workflows.folds.
            tune``) of the folder holding the folds (the one given, or the runs' common
            parent) when there is one, else 0.5 and 0.
        flip, scales, submission, layout, order, alpha, overwrite: as ``predict``.

    Returns:
        ``(written, threshold, min_size)``: the written paths and the threshold and minimum
        size used.
    """
    from keras_drn.workflows import folds as fold_lib

    models, parents = [], set()
    for member in members:
        path = pathlib.Path(member)
        fold_runs = sorted(path.glob("fold-*/" + runs.MODEL)) if path.is_dir() else []
        if path.is_dir() and not (path / runs.MODEL).exists() and fold_runs:
            models += fold_runs
            parents.add(path.resolve())
        elif path.is_dir():
            models.append(path / runs.MODEL)
            parents.add(path.resolve().parent)
        else:
            models.append(path)
            parents.add(path.resolve().parent.parent)
    if not models:
        raise ValueError("No runs given to the ensemble.")
    record = fold_lib.read_threshold(parents.pop()) if len(parents) == 1 else None
    tuned = record is not None and (threshold is None or min_size is None)
    if threshold is None:
        threshold = float(record["threshold"]) if record else 0.5
    if min_size is None:
        min_size = int(record.get("min_size", 0)) if record else 0
    print(f"ensemble of {len(models)} model(s), threshold {threshold:g}, min size {min_size}"
          + (f" ({fold_lib.THRESHOLD} of the folds)" if tuned else ""))
    written = predict([str(m) for m in models], images, output_dir, scales=scales, flip=flip,
                      alpha=alpha, threshold=threshold, min_size=min_size,
                      submission=submission, layout=layout, order=order, overwrite=overwrite)
    return written, threshold, min_size
