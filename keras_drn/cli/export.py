"""``keras-drn export`` (and ``python -m keras_drn.export``, kept for old scripts): the
arguments, and the model a command line names (a ``.keras`` file or a variant built here).
Imports Keras when its arguments are built (their choices are the export formats')."""

import argparse
import json
import os

from keras_drn import constants
from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD


def command(commands):
    return commands.add_parser(
        "export",
        help="export a model to a SavedModel, LiteRT or ONNX file and verify it against Keras",
        description="Export a DRN classifier or segmenter (a .keras file or a variant name) to a "
        "TensorFlow SavedModel, LiteRT (float32/float16/int8) or ONNX file, load it back, "
        "compare it with Keras and print the report and the op histogram.",
    )


def arguments(parser):
    build_parser(parser)


def _load_model(args):
    """The model the command exports: a ``.keras`` file, or a variant built here. A variant
    exported end to end is built with a ``preprocessing`` layer: ``--mean``/``--std`` when
    given, else ImageNet's (the published weights' statistics)."""
    import keras_drn
    from keras_drn.models.preprocessing import resolve_statistics, with_preprocessing
    from keras_drn.weights.loading import load_keras_model

    if args.model.endswith(".keras"):
        return load_keras_model(args.model)
    statistics = None
    if args.end_to_end:
        statistics = "imagenet"
        if args.mean is not None and args.std is not None:
            statistics = resolve_statistics((args.mean, args.std))
    if args.task == "classifier":
        model = keras_drn.get_model(args.model, weights=args.weights,
                                    classes=args.num_classes or 1000, include_preprocessing=False)
        if statistics is None:
            return model
        return with_preprocessing(model, *resolve_statistics(statistics))
    mean, std = resolve_statistics(statistics) if statistics is not None else (None, None)
    return keras_drn.DRNSegmenter(
        args.model, num_classes=args.num_classes or 19, head=args.head, context=args.context,
        upsampling=args.upsampling, weights=args.weights,
        include_preprocessing=statistics is not None, mean=mean, std=std,
    )


def _recorded_statistics(model_path):
    """``(mean, std)`` recorded in the ``info.json`` beside a ``.keras`` file (a run folder),
    or ``None``: the flags to suggest for a model saved without its ``preprocessing`` layer
    (``info.json`` is read for that hint only; the statistics are never taken from it)."""
    try:
        folder = os.path.dirname(os.path.abspath(model_path))
        with open(os.path.join(folder, "info.json")) as stream:
            info = json.load(stream)
        mean, std = [float(v) for v in info["mean"]], [float(v) for v in info["std"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (mean, std) if len(mean) == len(std) == 3 else None


def build_parser(parser=None):
    """The export arguments, added to ``parser`` (``keras-drn export``) or to a new parser."""
    from keras_drn.export.job import FORMATS, QUANTIZATIONS

    parser = parser or argparse.ArgumentParser(
        prog="keras-drn export",
        description="Export a DRN classifier or segmenter to a TensorFlow SavedModel, LiteRT "
        "or ONNX file, load it back, compare it with Keras and print the report (max "
        "difference or agreement, op histogram).",
    )
    parser.add_argument("model", help="a .keras model file, or a variant name (keras-drn models) "
                        "to build a model from (see --task, --weights)")
    parser.add_argument("output", help="the SavedModel folder, .tflite or .onnx file to write")
    parser.add_argument("--format", default="tf_saved_model", choices=FORMATS,
                        help="export format (default tf_saved_model)")
    parser.add_argument("--input-shape", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="static input size (needed by litert); default: the model's")
    parser.add_argument("--quantize", default="none",
                        choices=["none", *[q for q in QUANTIZATIONS if q]],
                        help="quantisation (litert, onnx; default none: float32)")
    parser.add_argument("--representative-data", metavar="embedded|FILE.npy",
                        help="int8 calibration inputs: 'embedded' (the embedded synthetic scenes) "
                        "or a .npy file of (N, H, W, C) inputs")
    parser.add_argument("--end-to-end", action="store_true",
                        help="uint8 RGB in, class ids out: the input is cast to float32 for the "
                        "model's own preprocessing layer and the argmax is added; nothing else "
                        "normalises (a variant name is built with ImageNet preprocessing)")
    parser.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"),
                        help="0-1 RGB mean the model was trained with: with --end-to-end, adds a "
                        "preprocessing layer to a model that has none; must match the model's "
                        f"own otherwise (ImageNet: {' '.join(map(str, IMAGENET_MEAN))})")
    parser.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"),
                        help="0-1 RGB std, as --mean (ImageNet: "
                        f"{' '.join(map(str, IMAGENET_STD))})")
    parser.add_argument("--min-agreement", type=float,
                        help="fail when fewer pixels/images than this fraction match Keras")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--task", default="segmenter", choices=["classifier", "segmenter"],
                        help="with a variant name: build a classifier or a DRNSegmenter")
    parser.add_argument("--num-classes", type=int,
                        help="with a variant name: classes (default 1000 / 19)")
    parser.add_argument("--head", default="drn", choices=constants.HEADS,
                        help="with a variant name: segmentation head")
    parser.add_argument("--context", choices=constants.CONTEXTS,
                        help="segmenter global context")
    parser.add_argument("--upsampling", default="deconv", choices=constants.UPSAMPLINGS,
                        help="segmenter upsampling")
    parser.add_argument("--weights", help="with a variant name: 'imagenet' or a weights file")
    return parser


def run(args):
    """Exports as parsed by ``build_parser``; the report is printed; returns 0."""
    import numpy as np

    from keras_drn.export.api import export
    from keras_drn.models.preprocessing import preprocessing_of

    if (args.mean is None) != (args.std is None):
        raise SystemExit("keras-drn export: give both --mean and --std, or neither.")
    representative = args.representative_data
    if representative is not None and representative != "embedded":
        representative = np.load(representative)
    model = _load_model(args)
    if args.end_to_end and args.mean is None and preprocessing_of(model) is None:
        recorded = _recorded_statistics(args.model)
        if recorded is not None:
            mean, std = (" ".join(f"{v:g}" for v in values) for values in recorded)
            raise ValueError(
                f"{args.model} has no 'preprocessing' layer (it takes normalised inputs) and "
                "--end-to-end takes raw uint8 RGB; the info.json beside it records the "
                f"statistics it was trained with: add --mean {mean} --std {std} (or rebuild "
                "the model with include_preprocessing=True, mean=, std=).")
    export(
        model, args.output, format=args.format,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        quantize=None if args.quantize == "none" else args.quantize,
        representative_data=representative, end_to_end=args.end_to_end, mean=args.mean,
        std=args.std, min_agreement=args.min_agreement, overwrite=args.overwrite,
    )
    return 0


def main(argv=None):
    """``python -m keras_drn.export MODEL OUTPUT --format litert --input-shape 512 1024``."""
    return run(build_parser().parse_args(argv))
