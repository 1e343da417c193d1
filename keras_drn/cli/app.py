"""The ``keras-drn`` command, argument parsing and dispatch: ``models`` lists the variants,
``weights`` lists and downloads the ImageNet files, ``convert`` converts a PyTorch checkpoint,
``export`` writes verified SavedModel/LiteRT/ONNX files, ``train``/``evaluate``/``predict``
run the segmentation and classification workflows (``keras_drn.workflows.segmentation``,
``keras_drn.workflows.classification``, run folders of ``keras_drn.workflows.runs``), ``ensemble`` and ``threshold``
predict with and tune the folds of a k-fold run (``keras_drn.workflows.folds``), ``upgrade`` converts
old run folders, ``demo`` trains a segmenter on the embedded synthetic scenes."""

import argparse
import os
import sys
import time


def _models(args):
    from keras_drn.models.drn import VARIANTS
    from keras_drn.models.registry import PARAMETERS, list_models

    print(f"{'name':<10} {'arch':<5} {'block':<11} {'blocks per level':<26} {'parameters':>12}")
    for name in list_models():
        spec = VARIANTS[name]
        depths = ",".join(str(d) for d in spec.depths)
        print(f"{name:<10} {spec.arch:<5} {spec.block:<11} {depths:<26} {PARAMETERS[name]:>12,}")
    return 0


def _demo(args):
    import keras
    import numpy as np

    import keras_drn
    from keras_drn.workflows import precision
    from keras_drn.data import CLASS_NAMES, scene_split
    from keras_drn.evaluation import confusion_matrix, iou_table
    from keras_drn.workflows.training import compile_segmenter
    from keras_drn.evaluation.visualize import comparison_grid, save_png

    from keras_drn import atomic

    atomic.check_replaceable([args.output], args.overwrite, "--output")
    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_val, y_val, statistics = scene_split(
        args.train, args.val, size=args.size, seed=args.seed)
    classes = len(CLASS_NAMES)
    policy = precision.apply(args.mixed_precision)
    model = keras_drn.DRNSegmenter(args.variant, num_classes=classes, head=args.head,
                                   preprocessing=statistics)
    print(
        f"{model.name}: {model.count_params():,} parameters, backend {keras.backend.backend()}, "
        f"{policy}; "
        f"{args.train} training and {args.val} validation scenes of {args.size}x{args.size} "
        f"(classes: {', '.join(CLASS_NAMES)})."
    )
    steps = args.epochs * -(-args.train // args.batch_size)
    # Keras's PolynomialDecay ends at 1e-4, not poly_schedule's 0: the recipe the README's
    # demo numbers and tools/compare_variants.py's comparison were measured with.
    schedule = keras.optimizers.schedules.PolynomialDecay(args.learning_rate, steps, power=0.9)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    compile_segmenter(model, classes, optimizer=optimizer)
    start = time.time()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_val, y_val), verbose=2)
    elapsed = time.time() - start
    predictions = np.argmax(model.predict(x_val, batch_size=args.batch_size, verbose=0), -1)
    print(f"validation IoU (%) after {elapsed:.0f} s of training:")
    print(iou_table(confusion_matrix(y_val, predictions, classes), CLASS_NAMES))
    grid = comparison_grid(x_val[:6], y_val[:6], predictions[:6], classes,
                           class_names=CLASS_NAMES)
    save_png(grid, args.output, overwrite=args.overwrite)
    print(f"wrote {args.output} (image | ground truth | prediction)")
    return 0


REPLACE_HELP = ("replace existing output files that keras_drn did not write (without it they "
                "are refused, before any work; files it wrote are replaced)")


def _progress(args):
    """Keras's ``verbose`` for training: progress bars on a terminal, one line per epoch when
    asked or when the output is a file or a pipe (Keras's bars redraw with backspaces and
    carriage returns whenever Python runs on a POSIX system, terminal or not)."""
    return 2 if args.one_line_per_epoch or not sys.stdout.isatty() else 1


def _none_or(value):
    return None if value in (None, "none", "None") else value


def _numbers(text):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def _scales(text):
    scales = _numbers(text)
    if not scales or min(scales) <= 0:
        raise argparse.ArgumentTypeError(f"scales must be positive, got {text!r}")
    return scales


def _thresholds(text):
    thresholds = _numbers(text)
    if not all(0 < t < 1 for t in thresholds):  # NaN fails too
        raise argparse.ArgumentTypeError(f"thresholds are object probabilities strictly "
                                         f"between 0 and 1, got {text!r}")
    return thresholds


def _train(args):
    from keras_drn.workflows import segmentation as segment

    if args.task == "classification":
        if args.num_processes not in (None, 1):
            raise SystemExit("--num-processes: several processes train segmenters only "
                             "(--task segmentation).")
        return _train_classifier(args)
    train = segment.train_folds if args.fold == "all" else segment.train
    train(
        data=args.data, output_dir=args.output_dir, backbone=args.backbone, head=args.head,
        context=_none_or(args.context), anti_alias=_none_or(args.anti_alias),
        upsampling=args.upsampling, backbone_weights=_none_or(args.backbone_weights),
        num_classes=args.num_classes, size=args.size, epochs=args.epochs,
        batch_size=args.batch_size, crop_size=args.crop_size, optimizer=args.optimizer,
        learning_rate=0.01 if args.lr is None else args.lr, lr_mode=args.lr_mode,
        step=args.step, momentum=args.momentum,
        weight_decay=args.weight_decay, scale=args.random_scale, rotate=args.random_rotate,
        flip=not args.no_flip, seed=args.seed, overwrite=args.overwrite,
        mixed_precision=args.mixed_precision, verbose=_progress(args),
        coordinator=args.coordinator, num_processes=args.num_processes,
        process_id=args.process_id, heartbeat_timeout=args.heartbeat_timeout,
        init_timeout=args.init_timeout,
        **_kfold_arguments(args),
    )
    return 0


def _kfold_arguments(args):
    """``segment.train`` / ``train_folds`` arguments of the k-fold group."""
    given = {"folds": args.folds, "stratify": _none_or(args.stratify),
             "group_by": args.group_by}
    if args.fold == "all":
        return dict(given, min_sizes=args.min_sizes)
    if args.fold is not None:
        try:
            given["fold"] = int(args.fold)
        except ValueError:
            raise SystemExit(f"--fold takes a fold number or 'all'; received {args.fold!r}.")
    if args.folds is not None and args.fold is None:
        raise SystemExit("--folds K needs --fold I (the held-out fold, 0..K-1) or --fold all.")
    return {key: value for key, value in given.items() if value is not None}


def _train_classifier(args):
    from keras_drn.workflows import classification as classify

    model, report = classify.train(
        data=args.data, output_dir=args.output_dir, backbone=args.backbone,
        backbone_weights=_none_or(args.backbone_weights), image_size=args.size,
        head_epochs=args.head_epochs, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=1e-3 if args.lr is None else args.lr,
        finetune_learning_rate=args.finetune_lr, weight_decay=args.weight_decay,
        patience=args.patience, val_fraction=args.val_fraction, image_dir=args.image_dir,
        seed=args.seed, overwrite=args.overwrite, mixed_precision=args.mixed_precision,
        verbose=_progress(args))
    if args.test_dir:  # the run's own file: a folder holding another's was refused
        submission = os.path.join(args.output_dir, "submission.csv")
        classify.write_submission(model, args.test_dir, submission, report.class_names,
                                  args.size, probabilities=args.probabilities,
                                  overwrite=True, option="--output-dir")
        print(f"wrote {submission}")
    return 0


def _evaluate(args):
    from keras_drn.workflows import classification as classify
    from keras_drn.workflows import segmentation as segment

    if classify.is_classifier_run(args.model, args.info):
        report, shift = classify.evaluate(args.model, args.data, split=args.split, tta=args.flip,
                                          consistency=args.consistency,
                                          max_shift=args.max_shift, info_path=args.info,
                                          image_dir=args.image_dir)
        print(f"{args.split} scores of {args.model} (flip {args.flip}):\n{report.table}")
        if shift is not None:
            print(f"{args.split} {shift}")
        return 0
    result = segment.evaluate(args.model, args.data, split=args.split, scales=args.scales,
                              flip=args.flip, info_path=args.info, size=args.size,
                              seed=args.seed, consistency=args.consistency,
                              max_shift=args.max_shift)
    report, shift = result if args.consistency else (result, None)
    if report is not None:
        print(f"{args.split} IoU (%) of {args.model} (scales {args.scales}, flip {args.flip}):")
        print(report.table)
        print(f"pixel accuracy {100 * report.pixel_accuracy:.2f}")
    if shift is not None:
        print(f"{args.split} {shift}")
    return 0


def _predict(args):
    from keras_drn.workflows import classification as classify
    from keras_drn.workflows import segmentation as segment

    if classify.is_classifier_run(args.model, args.info):
        if len(args.images) != 1:
            raise SystemExit("A classifier predicts a test folder: give one folder.")
        submission = args.submission or os.path.join(args.output_dir, "submission.csv")
        os.makedirs(os.path.dirname(submission) or ".", exist_ok=True)
        classify.predict(args.model, args.images[0], submission,
                         probabilities=args.probabilities, tta=args.flip, info_path=args.info,
                         overwrite=args.overwrite)
        print(f"wrote {submission}")
        return 0
    for path in segment.predict(args.model, _image_files(args.images), args.output_dir,
                                scales=args.scales, flip=args.flip, info_path=args.info,
                                threshold=args.threshold, min_size=args.min_size,
                                submission=args.submission, layout=args.layout,
                                order=args.rle_order, overwrite=args.overwrite):
        print(f"wrote {path}")
    return 0


def _ensemble(args):
    from keras_drn.workflows import segmentation as segment

    written, _, _ = segment.ensemble(
        args.runs, _image_files(args.images), args.output_dir, threshold=args.threshold,
        min_size=args.min_size, flip=not args.no_flip, scales=args.scales,
        submission=args.submission, layout=args.layout, order=args.rle_order,
        overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    return 0


def _threshold(args):
    import pathlib

    from keras_drn.workflows import folds

    run_dirs = []
    for path in map(pathlib.Path, args.runs):
        found = sorted(p.parent for p in path.glob(f"fold-*/{folds.OOF}"))
        run_dirs += found if found and not (path / folds.OOF).exists() else [path]
    # Default output: threshold.json in the folder holding the folds (tune's default).
    search = folds.tune(run_dirs, args.output, thresholds=args.thresholds or folds.THRESHOLDS,
                        min_sizes=args.min_sizes, overwrite=args.overwrite)
    print(search)
    for threshold, min_size, dice in search.scores:
        print(f"  threshold {threshold:<5g} min size {min_size:<4d} mean Dice {dice:.4f}")
    return 0


def _integers(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"sizes must be >= 0, got {text!r}")
    return values


def _image_files(paths):
    """Files as given; a folder stands for its image files (sorted)."""
    from keras_drn.constants import IMAGE_EXTENSIONS

    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise ValueError(f"The folder {path!r} holds no image files "
                                 f"({', '.join(IMAGE_EXTENSIONS)}).")
            files += found
        else:
            files.append(path)
    return files


def _add_distributed_arguments(train):
    from keras_drn.workflows.distribute import HEARTBEAT_TIMEOUT, INIT_TIMEOUT

    distributed = train.add_argument_group(
        "distributed (several processes, JAX backend; keras_drn.workflows.distribute)",
        "Run the same command in every process, each with its --process-id (0 writes "
        "OUTPUT_DIR, which all processes must share). Without these options they are read "
        "from the environment a launcher sets: KERAS_DISTRIBUTION_JOB_ADDRESSES / "
        "_NUM_PROCESSES / _PROCESS_ID, TF_CONFIG, or SLURM (srun: SLURM_NTASKS, SLURM_PROCID, "
        "the first host of SLURM_STEP_NODELIST, port KERAS_DRN_COORDINATOR_PORT).")
    distributed.add_argument("--coordinator", metavar="HOST:PORT",
                             help="address of process 0 (it listens on PORT)")
    distributed.add_argument("--num-processes", type=int, metavar="N",
                             help="processes of the job (default 1)")
    distributed.add_argument("--process-id", type=int, metavar="I",
                             help="this process, 0 to N-1 (0 is the chief)")
    distributed.add_argument("--heartbeat-timeout", type=int, default=HEARTBEAT_TIMEOUT,
                             metavar="SECONDS", help="a process silent this long counts as "
                             f"dead and the job stops (default {HEARTBEAT_TIMEOUT})")
    distributed.add_argument("--init-timeout", type=int, default=INIT_TIMEOUT,
                             metavar="SECONDS", help="how long a process waits for all the "
                             "others to join before it gives up, saying whom it waited for "
                             f"(default {INIT_TIMEOUT})")


def _add_segmentation_commands(commands):
    from keras_drn.workflows import precision
    from keras_drn.workflows.classification import DATA_HELP as CLASSIFICATION_DATA_HELP
    from keras_drn.workflows.segmentation import DATA_HELP

    train = commands.add_parser(
        "train", help="train a DRN segmenter (the reference segment.py recipe) or, with "
        "--task classification, fine-tune a DRN classifier",
        description="Trains keras_drn.DRNSegmenter with the reference recipe (SGD momentum "
        "0.9, weight decay 1e-4, poly or step learning rate, random scale/rotate/crop/flip), "
        "saves OUTPUT_DIR/model.keras, best.keras, info.json and log.csv, prints the "
        "validation IoU per class and writes OUTPUT_DIR/val_predictions.png. Running it again "
        "with the same arguments resumes an interrupted run at its first unfinished epoch. "
        "--task classification fine-tunes a classifier instead (keras_drn.workflows.classification: frozen "
        "backbone, then all of it at --finetune-lr; early stopping; best.keras, model.keras, "
        "info.json, log.csv, confusion_matrix.png; OUTPUT_DIR/submission.csv for --test-dir).",
    )
    train.add_argument("--task", default="segmentation",
                       choices=["segmentation", "classification"], help="what to train")
    train.add_argument("--data", default="synthetic", help=f"training data: {DATA_HELP} "
                       "(default synthetic). Classification: " + CLASSIFICATION_DATA_HELP)
    train.add_argument("--output-dir", default="runs/drn", help="run folder (default "
                       "runs/drn): info.json, model.keras, best.keras, log.csv, state/; safe "
                       "to kill at any moment, rerun the same command to resume")
    train.add_argument("--backbone", default="drn_d_22", help="DRN variant (keras-drn models)")
    train.add_argument("--head", default="drn", choices=["drn", "gcn"],
                       help="drn: 1x1 classifier + bilinear x8; gcn: GCN + boundary refinement")
    train.add_argument("--context", default="none", choices=["none", "parsenet"],
                       help="ParseNet global context before the classifier")
    train.add_argument("--anti-alias", default="none", choices=["none", "blur", "adaptive"],
                       help="low-pass filter before each downsampling")
    train.add_argument("--upsampling", default="deconv", choices=["deconv", "bilinear"],
                       help="how logits return to the input resolution")
    train.add_argument("--backbone-weights", default="none",
                       help="'imagenet', a weights file, or none (random init)")
    train.add_argument("--num-classes", type=int, help="classes of an image/mask folder: 1 "
                       "for binary masks (one logit per pixel, sigmoid; 0/1 or 0/255 masks), "
                       "else the number of classes (softmax)")
    train.add_argument("--size", type=int, default=64, help="side of the synthetic scenes "
                       "(classification: of the training images)")
    train.add_argument("--epochs", type=int, default=10, help="training epochs (default 10; "
                       "classification: of the unfrozen phase, at most)")
    train.add_argument("--batch-size", type=int, default=8, help="batch size (default 8); "
                       "with several processes the global batch, split evenly over them")
    train.add_argument("--crop-size", type=int,
                       help="random crop side (default: none; the scene size for synthetic)")
    train.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"],
                       help="sgd: the reference's SGD with momentum; adamw: AdamW")
    train.add_argument("--lr", type=float, help="learning rate (default 0.01; classification: "
                       "of the frozen phase, AdamW, default 0.001)")
    train.add_argument("--lr-mode", default="poly", choices=["poly", "step"],
                       help="poly: lr*(1-t/T)^0.9; step: x0.1 every --step epochs")
    train.add_argument("--step", type=int, default=100, help="epochs between x0.1 steps")
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    train.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay")
    train.add_argument("--random-scale", type=float, default=2.0,
                       help="scale by U[1/s, s] (1 turns it off; default 2)")
    train.add_argument("--random-rotate", type=int, default=10,
                       help="rotate by an integer angle in [-r, r] degrees (0 turns it off)")
    train.add_argument("--no-flip", action="store_true", help="no random horizontal flip")
    train.add_argument("--seed", type=int, default=0, help="seed of data and initialisation")
    train.add_argument("--mixed-precision", default="auto", choices=precision.CHOICES,
                       help="dtype policy (default auto: mixed_bfloat16 on GPUs with bfloat16 "
                       "tensor cores and, on TensorFlow, on CPUs with AMX-BF16; "
                       "mixed_float16 on older GPUs; float32 elsewhere)")
    train.add_argument("--overwrite", action="store_true",
                       help="delete the run already in --output-dir and start over (without "
                       "it, a folder holding a different run, or files of a run that "
                       "keras_drn did not write, is refused and the same run resumes); with "
                       "--fold all, also replace a threshold.json keras_drn did not write")
    train.add_argument("--one-line-per-epoch", action="store_true",
                       help="print one line per epoch instead of progress bars (the default "
                       "when the output is not a terminal: a log file gets no escape codes)")
    kfold = train.add_argument_group(
        "k-fold", "train on K-1 folds of the training data and validate on the held-out one "
        "(keras_drn.workflows.folds); the run ends by writing OUTPUT_DIR/oof.npz, its out-of-fold "
        "probabilities")
    kfold.add_argument("--folds", type=int, help="number of folds K (seeded by --seed)")
    kfold.add_argument("--fold", help="the held-out fold, 0..K-1, or 'all': train every fold "
                       "into OUTPUT_DIR/fold-I, then write OUTPUT_DIR/threshold.json (the "
                       "threshold maximising the out-of-fold mean per-image Dice)")
    kfold.add_argument("--stratify", default="none", choices=["none", "empty"],
                       help="empty: every fold gets its share of empty and non-empty masks")
    kfold.add_argument("--group-by", help="a column of the data's CSV (rle: sources; 'id' "
                       "works for any): examples sharing a value share a fold")
    kfold.add_argument("--min-sizes", type=_integers, default=(0,),
                       help="with --fold all: minimum component sizes the threshold search "
                       "tries, comma-separated (default 0)")
    classification = train.add_argument_group("classification (--task classification)")
    classification.add_argument("--head-epochs", type=int, default=2,
                                help="epochs of the new head on the frozen backbone")
    classification.add_argument("--finetune-lr", type=float, default=3e-4,
                                help="learning rate of the unfrozen phase (default 0.0003)")
    classification.add_argument("--patience", type=int, default=3,
                                help="early stopping patience in epochs")
    classification.add_argument("--val-fraction", type=float, default=0.2,
                                help="validation share of a folder, CSV or TFDS dataset")
    classification.add_argument("--image-dir", help="folder of the images a CSV lists")
    classification.add_argument("--test-dir", help="test images: write OUTPUT_DIR/"
                                "submission.csv (id, predicted label)")
    classification.add_argument("--probabilities", action="store_true",
                                help="submission with one probability column per class")
    _add_distributed_arguments(train)
    train.set_defaults(run=_train)

    scales_help = ("comma-separated test scales (default 1; the reference's multi-scale test: "
                   "0.5,0.75,1,1.25,1.5,1.75)")
    info_help = "the run's info.json (default: beside the model)"
    evaluate = commands.add_parser(
        "evaluate", help="score a trained model: IoU per class and mIoU, or a classifier "
        "run's accuracy and per-class precision/recall",
        description="Scores a model saved by keras-drn train on a labelled split, with the "
        "reference's single- or multi-scale protocol; pixels labelled 255 are ignored. A "
        "classification run (its info.json says so) gets accuracy and per-class precision and "
        "recall on the same train/val split as in training (--flip: flip test-time "
        "augmentation). With --consistency, also how stable the predictions are under small "
        "input shifts (for any other classifier, only that).",
    )
    evaluate.add_argument("model", help="model.keras or best.keras of a run")
    evaluate.add_argument("--data", default="synthetic", help=f"data: {DATA_HELP}")
    evaluate.add_argument("--split", default="val", help="split to score (default val)")
    evaluate.add_argument("--scales", type=_scales, default=(1.0,), help=scales_help)
    evaluate.add_argument("--flip", action="store_true", help="also average flipped inputs")
    evaluate.add_argument("--info", help=info_help)
    evaluate.add_argument("--size", type=int, default=64, help="side of the synthetic scenes")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes")
    evaluate.add_argument("--consistency", action="store_true",
                          help="also report shift consistency: segmenters, the fraction of "
                          "pixels whose label is unchanged when the input shifts by (d, d), "
                          "d = 1..--max-shift, compared on the overlap; classifiers (which "
                          "get no IoU), how often two random shifts give the same top-1 class")
    evaluate.add_argument("--max-shift", type=int, default=8,
                          help="largest shift in pixels for --consistency (default 8)")
    evaluate.add_argument("--image-dir", help="classification: folder of the images a CSV "
                          "lists")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser(
        "predict", help="segment images (mask PNG and overlay per image) or classify a test "
        "folder (submission CSV)",
        description="Runs a model saved by keras-drn train on image files and writes "
        "OUTPUT_DIR/<name>_mask.png (palette PNG: pixel values are class ids) and "
        "OUTPUT_DIR/<name>_overlay.png (coloured mask over the image). For a classifier run "
        "(info.json task 'classification') give a test folder: it writes a submission CSV "
        "(id, predicted label) with flip test-time augmentation when --flip is given.",
    )
    predict.add_argument("model", help="model.keras or best.keras of a run")
    predict.add_argument("images", nargs="+", help="image files (RGB, grayscale or RGBA) or "
                         "folders of them")
    predict.add_argument("--output-dir", default="predictions", help="where to write PNGs")
    predict.add_argument("--scales", type=_scales, default=(1.0,), help=scales_help)
    predict.add_argument("--flip", action="store_true", help="also average flipped inputs")
    predict.add_argument("--info", help=info_help)
    predict.add_argument("--submission", help="classifier: the CSV to write (default "
                         "OUTPUT_DIR/submission.csv); segmenter: also write this CSV of "
                         "run-length-encoded masks (1-indexed start/length pairs)")
    predict.add_argument("--threshold", type=float, default=0.5,
                         help="binary segmenter: object probability threshold (default 0.5)")
    predict.add_argument("--min-size", type=int, default=0,
                         help="segmenter: drop connected regions smaller than this many "
                         "pixels (default 0: keep all)")
    predict.add_argument("--layout", choices=["image", "image_class"],
                         help="segmenter submission rows: one per image (ImageId,"
                         "EncodedPixels; default for binary runs) or per image and class "
                         "(ImageId_ClassId,EncodedPixels; default otherwise)")
    predict.add_argument("--rle-order", default="F", choices=["F", "C"],
                         help="pixel order of the run-length encoding: F column-major "
                         "(default, most competitions) or C row-major")
    predict.add_argument("--probabilities", action="store_true",
                         help="classifier: one probability column per class")
    predict.add_argument("--overwrite", action="store_true", help=REPLACE_HELP)
    predict.set_defaults(run=_predict)

    ensemble = commands.add_parser(
        "ensemble", help="segment images with the mean probability of several runs (the "
        "folds of keras-drn train --folds K), with flip TTA",
        description="Averages the probabilities of several segmentation runs (flip test-time "
        "augmentation unless --no-flip) and writes OUTPUT_DIR/<name>_mask.png and "
        "<name>_overlay.png per image, and with --submission a CSV of run-length-encoded "
        "masks. Binary runs threshold the mean probability: by default at the threshold and "
        "minimum size of the folds' threshold.json (keras-drn threshold, train --fold all), "
        "else 0.5.")
    ensemble.add_argument("runs", nargs="+", help="run folders, their .keras files, or a "
                          "folder holding fold-* runs (train --fold all's OUTPUT_DIR)")
    ensemble.add_argument("--images", nargs="+", required=True,
                          help="image files or folders of them")
    ensemble.add_argument("--output-dir", default="predictions", help="where to write PNGs")
    ensemble.add_argument("--scales", type=_scales, default=(1.0,), help=scales_help)
    ensemble.add_argument("--no-flip", action="store_true", help="no flip TTA")
    ensemble.add_argument("--threshold", type=float, help="object probability threshold "
                          "(default: threshold.json of the folds, else 0.5)")
    ensemble.add_argument("--min-size", type=int, help="drop regions smaller than this many "
                          "pixels (default: threshold.json of the folds, else 0)")
    ensemble.add_argument("--submission", help="also write this CSV of run-length-encoded "
                          "masks")
    ensemble.add_argument("--layout", choices=["image", "image_class"],
                          help="submission rows, as keras-drn predict --layout")
    ensemble.add_argument("--rle-order", default="F", choices=["F", "C"],
                          help="F column-major (default) or C row-major")
    ensemble.add_argument("--overwrite", action="store_true", help=REPLACE_HELP)
    ensemble.set_defaults(run=_ensemble)

    threshold = commands.add_parser(
        "threshold", help="search the threshold (and minimum size) maximising the mean "
        "per-image Dice on the out-of-fold predictions of k-fold runs",
        description="Reads the oof.npz of each fold run (keras-drn train --folds K --fold I) "
        "and prints the threshold and minimum component size with the highest mean "
        "per-image Dice (an empty prediction of an empty mask scores 1, as on Kaggle), and "
        "writes it to threshold.json beside the folds, where keras-drn ensemble finds it.")
    threshold.add_argument("runs", nargs="+", help="fold run folders, or the folder holding "
                           "fold-* runs")
    threshold.add_argument("--thresholds", type=_thresholds, default=None,
                           help="comma-separated thresholds to try (default 0.05..0.95 by "
                           "0.05)")
    threshold.add_argument("--min-sizes", type=_integers, default=(0,),
                           help="comma-separated minimum component sizes to try (default 0)")
    threshold.add_argument("--output", help="the JSON to write (default threshold.json in the "
                           "folder holding the folds, written only from all the folds)")
    threshold.add_argument("--overwrite", action="store_true", help=REPLACE_HELP)
    threshold.set_defaults(run=_threshold)


def _convert(args):
    from keras_drn.models.registry import convert_checkpoint

    model = convert_checkpoint(args.source, args.destination, args.variant)
    print(f"wrote {args.destination}: {model.name}, {model.count_params():,} parameters")
    return 0


def _upgrade(args):
    from keras_drn.workflows import runs

    for path in args.runs:
        folder = runs.RunFolder(path)
        before = runs.read_json(folder.info_path) if folder.info_path.is_file() else {}
        info = runs.upgrade(path)
        if before.get("format") == runs.FORMAT:
            print(f"{path}: already run folder format {runs.FORMAT}; nothing to convert")
            continue
        print(f"{path}: run folder format {info['format']} ({info['task']}); its models take "
              "raw 0-255 RGB and carry their normalisation")
    return 0


def build_parser():
    from keras_drn.workflows import precision

    parser = argparse.ArgumentParser(
        prog="keras-drn",
        description="Dilated Residual Networks for Keras 3. Set KERAS_BACKEND to tensorflow, "
        "jax or torch to choose the backend.",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines (quiet by default)")
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="list the DRN variants and their sizes")
    models.set_defaults(run=_models)
    converter = commands.add_parser(
        "convert",
        help="convert a DRN PyTorch checkpoint to a Keras .weights.h5 file",
        description="Convert a DRN PyTorch checkpoint (the reference's drn.py or segment.py, "
        "or imgclsmob's pytorchcv layout; .pth, .pt or .pth.zip, zip or legacy format; "
        "PyTorch not needed) into a Keras .weights.h5 file.",
    )
    converter.add_argument("source", help="the .pth/.pt/.pth.zip checkpoint")
    converter.add_argument("destination", help="the .weights.h5 file to write")
    converter.add_argument("--variant", required=True,
                           help="the architecture of the checkpoint (keras-drn models lists "
                           "them)")
    converter.set_defaults(run=_convert)
    from keras_drn.cli import weights as weights_commands

    weights = commands.add_parser(
        "weights", help="list the pretrained files, or download them for offline use")
    weights_commands.build_parser(weights)
    weights.set_defaults(run=weights_commands.run)
    from keras_drn.cli.export import build_parser as export_arguments
    from keras_drn.cli.export import run as run_export

    exporter = commands.add_parser(
        "export",
        help="export a model to a SavedModel, LiteRT or ONNX file and verify it against Keras",
        description="Export a DRN classifier or segmenter (a .keras file or a variant name) to a "
        "TensorFlow SavedModel, LiteRT (float32/float16/int8) or ONNX file, load it back, "
        "compare it with Keras and print the report and the op histogram.",
    )
    export_arguments(exporter)
    exporter.set_defaults(run=run_export)
    _add_segmentation_commands(commands)
    upgrade = commands.add_parser(
        "upgrade", help="convert run folders written by keras_drn 0.1 (normalisation outside "
        "the model) to the current format",
        description="Converts run folders written before run folders had format 2: their "
        "segmenters normalised inputs outside the model. The models get their normalisation "
        "(mean/std from info.json) as a 'preprocessing' layer, so they take raw 0-255 RGB, "
        "and info.json gets the new fields. Safe to run twice.")
    upgrade.add_argument("runs", nargs="+", help="run folders")
    upgrade.set_defaults(run=_upgrade)
    demo = commands.add_parser(
        "demo",
        help="train a DRN segmenter on the embedded synthetic scenes and report its mIoU",
        description="Trains a DRN segmenter from scratch on the embedded synthetic scenes "
        "(disks, 1-3 pixel lines and squares on textured backgrounds), prints the validation "
        "IoU per class and the mIoU, and writes a PNG of image / ground truth / prediction. "
        "Needs no download.",
    )
    demo.add_argument("--variant", default="drn_d_22", help="backbone name (keras-drn models)")
    demo.add_argument("--head", default="gcn", choices=["drn", "gcn"], help="segmentation head")
    demo.add_argument("--output", default="drn_demo.png", help="where to write the PNG")
    demo.add_argument("--size", type=int, default=48, help="scene side in pixels")
    demo.add_argument("--train", type=int, default=768, help="number of training scenes")
    demo.add_argument("--val", type=int, default=128, help="number of validation scenes")
    demo.add_argument("--epochs", type=int, default=10, help="training epochs")
    demo.add_argument("--batch-size", type=int, default=16, help="batch size")
    demo.add_argument("--learning-rate", type=float, default=2e-3, help="AdamW learning rate")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and initialisation")
    demo.add_argument("--mixed-precision", default="auto", choices=precision.CHOICES,
                      help="dtype policy (default auto, as for train)")
    demo.add_argument("--overwrite", action="store_true",
                      help="replace an --output file that keras_drn did not write")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    import keras_drn

    keras_drn._load()  # the backend, then the library, before the parser's imports of Keras
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
