"""``keras-drn predict``: masks of a segmenter, or a classifier's submission CSV."""

import os
import sys

from keras_drn.cli.arguments import INFO_HELP, REPLACE_HELP, SCALES_HELP, image_files, scales


def command(commands):
    return commands.add_parser(
        "predict", help="segment images (mask PNG and overlay per image) or classify a test "
        "folder (submission CSV)",
        description="Runs a model saved by keras-drn train on image files and writes "
        "OUTPUT_DIR/<name>_mask.png (palette PNG: pixel values are class ids) and "
        "OUTPUT_DIR/<name>_overlay.png (coloured mask over the image). For a classifier run "
        "(info.json task 'classification') give a test folder: it writes a submission CSV "
        "(id, predicted label: the run's class names) with flip test-time augmentation when "
        "--flip is given. Classes, their names and the image size are the run's (info.json).",
    )


def arguments(parser):
    parser.add_argument("model", help="model.keras or best.keras of a run")
    parser.add_argument("images", nargs="+", help="image files (RGB, grayscale or RGBA) or "
                        "folders of them")
    parser.add_argument("--output-dir", default="predictions", help="where to write PNGs")
    parser.add_argument("--scales", type=scales, default=(1.0,), help=SCALES_HELP)
    parser.add_argument("--flip", action="store_true", help="also average flipped inputs")
    parser.add_argument("--info", help=INFO_HELP)
    parser.add_argument("--submission", help="classifier: the CSV to write (default "
                        "OUTPUT_DIR/submission.csv); segmenter: also write this CSV of "
                        "run-length-encoded masks (1-indexed start/length pairs)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="binary segmenter: object probability threshold (default 0.5)")
    parser.add_argument("--min-size", type=int, default=0,
                        help="segmenter: drop connected regions smaller than this many "
                        "pixels (default 0: keep all)")
    parser.add_argument("--layout", choices=["image", "image_class"],
                        help="segmenter submission rows: one per image (ImageId,"
                        "EncodedPixels; default for binary runs) or per image and class "
                        "(ImageId_ClassId,EncodedPixels; default otherwise)")
    parser.add_argument("--rle-order", default="F", choices=["F", "C"],
                        help="pixel order of the run-length encoding: F column-major "
                        "(default, most competitions) or C row-major")
    parser.add_argument("--probabilities", action="store_true",
                        help="classifier: one probability column per class")
    parser.add_argument("--overwrite", action="store_true", help=REPLACE_HELP)


def run(args):
    from keras_drn.workflows import classification as classify
    from keras_drn.workflows import runs
    from keras_drn.workflows import segmentation as segment

    if classify.is_classifier_run(args.model, args.info):
        if len(args.images) != 1:
            raise ValueError("A classifier predicts a test folder: give one folder.")
        submission = args.submission or os.path.join(args.output_dir, "submission.csv")
        os.makedirs(os.path.dirname(submission) or ".", exist_ok=True)
        classify.predict(args.model, args.images[0], submission,
                         probabilities=args.probabilities, tta=args.flip, info_path=args.info,
                         overwrite=args.overwrite)
        print(f"wrote {submission}")
        return 0
    runs.check_model_file(args.model)  # the model first: its error before the images'
    for path in segment.predict(args.model, _readable(image_files(args.images)), args.output_dir,
                                scales=args.scales, flip=args.flip, info_path=args.info,
                                threshold=args.threshold, min_size=args.min_size,
                                submission=args.submission, layout=args.layout,
                                order=args.rle_order, overwrite=args.overwrite):
        print(f"wrote {path}")
    return 0


def _readable(paths):
    """The images that decode; the others are named on stderr and skipped (one broken file
    does not stop a folder). None readable: refused."""
    from keras_drn.data.checks import problem_report, readable_images

    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise FileNotFoundError(f"{missing[0]!r} does not exist" + (
            f" (nor {len(missing) - 1} more of the images)" if len(missing) > 1 else "") + ".")
    readable, unreadable = readable_images(paths, warn=False)
    if unreadable:
        if not readable:
            raise ValueError(problem_report(unreadable, "the images to predict",
                                            "None is left to predict."))
        print(f"keras-drn predict: {problem_report(unreadable, 'the images', 'Skipped.')}",
              file=sys.stderr)
    return readable
