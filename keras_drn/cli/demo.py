"""``keras-drn demo``: a DRN segmenter trained on the embedded synthetic scenes."""

import time

from keras_drn import constants
from keras_drn.workflows import precision


def command(commands):
    return commands.add_parser(
        "demo",
        help="train a DRN segmenter on the embedded synthetic scenes and report its mIoU",
        description="Trains a DRN segmenter from scratch on the embedded synthetic scenes "
        "(disks, 1-3 pixel lines and squares on textured backgrounds), prints the validation "
        "IoU per class and the mIoU, and writes a PNG of image / ground truth / prediction. "
        "Needs no download.",
    )


def arguments(parser):
    parser.add_argument("--variant", default="drn_d_22", help="backbone name (keras-drn models)")
    parser.add_argument("--head", default="gcn", choices=constants.HEADS,
                        help="segmentation head")
    parser.add_argument("--output", default="drn_demo.png", help="where to write the PNG")
    parser.add_argument("--size", type=int, default=48, help="scene side in pixels")
    parser.add_argument("--train", type=int, default=768, help="number of training scenes")
    parser.add_argument("--val", type=int, default=128, help="number of validation scenes")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="AdamW learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and initialisation")
    parser.add_argument("--mixed-precision", default="auto", choices=precision.CHOICES,
                        help="dtype policy (default auto, as for train)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an --output file that keras_drn did not write")


def run(args):
    import keras
    import numpy as np

    import keras_drn
    from keras_drn import atomic
    from keras_drn.data import CLASS_NAMES, scene_split
    from keras_drn.evaluation import confusion_matrix, iou_table
    from keras_drn.evaluation.visualize import comparison_grid, save_png
    from keras_drn.workflows.training import compile_segmenter

    atomic.check_replaceable([args.output], args.overwrite, "--output")
    keras.utils.set_random_seed(args.seed)
    x_train, y_train, x_val, y_val, statistics = scene_split(
        args.train, args.val, size=args.size, seed=args.seed)
    classes = len(CLASS_NAMES)
    policy = precision.apply(args.mixed_precision)
    model = keras_drn.DRNSegmenter(args.variant, num_classes=classes, head=args.head,
                                   include_preprocessing=True, mean=statistics[0],
                                   std=statistics[1])
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
