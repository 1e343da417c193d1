"""The ``keras-drn`` command: ``models`` lists the variants, ``convert`` converts a PyTorch
checkpoint, ``demo`` trains a segmenter on the embedded synthetic scenes."""

import argparse
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
    from keras_drn.data import CLASS_NAMES, make_scenes
    from keras_drn.evaluation import confusion_matrix, iou_table, segmentation_miou
    from keras_drn.visualize import comparison_grid, save_png

    keras.utils.set_random_seed(args.seed)
    images, masks, _ = make_scenes(args.train + args.val, size=args.size, seed=args.seed)
    mean, std = images[: args.train].mean(axis=(0, 1, 2)), images[: args.train].std(axis=(0, 1, 2))
    inputs = (images - mean) / std  # normalise with the training set's statistics
    x_train, y_train = inputs[: args.train], masks[: args.train]
    x_val, y_val = inputs[args.train :], masks[args.train :]
    classes = len(CLASS_NAMES)
    model = keras_drn.DRNSegmenter(args.variant, num_classes=classes, head=args.head)
    print(
        f"{model.name}: {model.count_params():,} parameters, backend {keras.backend.backend()}; "
        f"{args.train} training and {args.val} validation scenes of {args.size}x{args.size} "
        f"(classes: {', '.join(CLASS_NAMES)})."
    )
    steps = args.epochs * -(-args.train // args.batch_size)
    schedule = keras.optimizers.schedules.PolynomialDecay(args.learning_rate, steps, power=0.9)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
        metrics=[segmentation_miou(classes)],
    )
    start = time.time()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_val, y_val), verbose=2)
    elapsed = time.time() - start
    predictions = np.argmax(model.predict(x_val, batch_size=args.batch_size, verbose=0), -1)
    print(f"validation IoU (%) after {elapsed:.0f} s of training:")
    print(iou_table(confusion_matrix(y_val, predictions, classes), CLASS_NAMES))
    grid = comparison_grid(images[args.train :][:6], y_val[:6], predictions[:6], classes)
    save_png(grid, args.output)
    print(f"wrote {args.output} (image | ground truth | prediction)")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-drn",
        description="Dilated Residual Networks for Keras 3. Set KERAS_BACKEND to tensorflow, "
        "jax or torch to choose the backend.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="list the DRN variants and their sizes")
    models.set_defaults(run=_models)
    from keras_drn.weights import convert

    converter = commands.add_parser(
        "convert",
        help="convert an official DRN PyTorch checkpoint to a Keras .weights.h5 file",
        description="Convert an official DRN PyTorch checkpoint (drn.py or segment.py, zip or "
        "legacy format; PyTorch not needed) into a Keras .weights.h5 file.",
    )
    convert.build_parser(converter)
    converter.set_defaults(run=convert.run)
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
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
