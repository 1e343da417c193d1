"""``keras-drn ensemble``: masks from the mean probability of several runs (k-fold folds)."""

from keras_drn.cli.arguments import REPLACE_HELP, SCALES_HELP, image_files, scales


def command(commands):
    return commands.add_parser(
        "ensemble", help="segment images with the mean probability of several runs (the "
        "folds of keras-drn train --folds K), with flip TTA",
        description="Averages the probabilities of several segmentation runs (flip test-time "
        "augmentation unless --no-flip) and writes OUTPUT_DIR/<name>_mask.png and "
        "<name>_overlay.png per image, and with --submission a CSV of run-length-encoded "
        "masks. Binary runs threshold the mean probability: by default at the threshold and "
        "minimum size of the folds' threshold.json (keras-drn threshold, train --fold all), "
        "else 0.5.")


def arguments(parser):
    parser.add_argument("runs", nargs="+", help="run folders, their .keras files, or a "
                        "folder holding fold-* runs (train --fold all's OUTPUT_DIR)")
    parser.add_argument("--images", nargs="+", required=True,
                        help="image files or folders of them")
    parser.add_argument("--output-dir", default="predictions", help="where to write PNGs")
    parser.add_argument("--scales", type=scales, default=(1.0,), help=SCALES_HELP)
    parser.add_argument("--no-flip", action="store_true", help="no flip TTA")
    parser.add_argument("--threshold", type=float, help="object probability threshold "
                        "(default: threshold.json of the folds, else 0.5)")
    parser.add_argument("--min-size", type=int, help="drop regions smaller than this many "
                        "pixels (default: threshold.json of the folds, else 0)")
    parser.add_argument("--submission", help="also write this CSV of run-length-encoded "
                        "masks")
    parser.add_argument("--layout", choices=["image", "image_class"],
                        help="submission rows, as keras-drn predict --layout")
    parser.add_argument("--rle-order", default="F", choices=["F", "C"],
                        help="F column-major (default) or C row-major")
    parser.add_argument("--overwrite", action="store_true", help=REPLACE_HELP)


def run(args):
    from keras_drn.workflows import segmentation as segment

    written, _, _ = segment.ensemble(
        args.runs, image_files(args.images), args.output_dir, threshold=args.threshold,
        min_size=args.min_size, flip=not args.no_flip, scales=args.scales,
        submission=args.submission, layout=args.layout, order=args.rle_order,
        overwrite=args.overwrite)
    for path in written:
        print(f"wrote {path}")
    return 0
