"""``keras-drn evaluate``: scores a trained segmenter (IoU) or classifier (accuracy)."""

from keras_drn.cli.arguments import INFO_HELP, SCALES_HELP, scales


def command(commands):
    return commands.add_parser(
        "evaluate", help="score a trained model: IoU per class and mIoU, or a classifier "
        "run's accuracy and per-class precision/recall",
        description="Scores a model saved by keras-drn train on a labelled split, with the "
        "reference's single- or multi-scale protocol; pixels labelled 255 are ignored. The "
        "data, its split, scene size and classes are the run's (its info.json) unless given. "
        "A classification run (its info.json says so) gets accuracy and per-class precision "
        "and recall on the same train/val split as in training (--flip: flip test-time "
        "augmentation). With --consistency, also how stable the predictions are under small "
        "input shifts (for any other classifier, only that).",
    )


def arguments(parser):
    parser.add_argument("model", help="model.keras or best.keras of a run")
    parser.add_argument("--data", help="the data spec to score on (default: the run's, from "
                        "its info.json; needed for a model outside a run folder)")
    parser.add_argument("--split", default="val", help="split to score (default val)")
    parser.add_argument("--scales", type=scales, default=(1.0,), help=SCALES_HELP)
    parser.add_argument("--flip", action="store_true", help="also average flipped inputs")
    parser.add_argument("--info", help=INFO_HELP)
    parser.add_argument("--size", type=int, help="side of the synthetic scenes, or the side "
                        "image files are resized to (default: the run's)")
    parser.add_argument("--seed", type=int, help="seed of the synthetic scenes and the split "
                        "(default: the run's)")
    parser.add_argument("--consistency", action="store_true",
                        help="also report shift consistency: segmenters, the fraction of "
                        "pixels whose label is unchanged when the input shifts by (d, d), "
                        "d = 1..--max-shift, compared on the overlap; classifiers (which "
                        "get no IoU), how often two random shifts give the same top-1 class")
    parser.add_argument("--max-shift", type=int, default=8,
                        help="largest shift in pixels for --consistency (default 8)")
    parser.add_argument("--image-dir", help="classification: folder of the images a CSV "
                        "lists (default: the run's)")


def run(args):
    from keras_drn.workflows import classification as classify
    from keras_drn.workflows import segmentation as segment

    if classify.is_classifier_run(args.model, args.info):
        report, shift = classify.evaluate(args.model, args.data, split=args.split, tta=args.flip,
                                          consistency=args.consistency,
                                          max_shift=args.max_shift, info_path=args.info,
                                          image_dir=args.image_dir, seed=args.seed)
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
