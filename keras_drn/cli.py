"""The ``keras-drn`` command: ``models`` lists the variants, ``demo`` runs a small end-to-end
classification on the embedded synthetic scenes."""

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

    keras.utils.set_random_seed(args.seed)
    images, _, labels = make_scenes(args.train + args.val, size=args.size, seed=args.seed)
    mean, std = images[: args.train].mean(axis=(0, 1, 2)), images[: args.train].std(axis=(0, 1, 2))
    images = (images - mean) / std  # normalise with the training set's statistics
    x_train, y_train = images[: args.train], labels[: args.train]
    x_val, y_val = images[args.train :], labels[args.train :]
    model = keras_drn.get_model(args.variant, classes=len(CLASS_NAMES) - 1)
    print(
        f"{args.variant}: {model.count_params():,} parameters, backend "
        f"{keras.backend.backend()}; {args.train} training and {args.val} validation scenes of "
        f"{args.size}x{args.size} (classes: {', '.join(CLASS_NAMES[1:])})."
    )
    features = keras_drn.feature_model(model)(x_val[:1], training=False)
    print("level outputs:", ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in features.items()))
    model.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=1e-4),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.time()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_val, y_val), verbose=2)
    probabilities = model.predict(x_val, batch_size=args.batch_size, verbose=0)
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_val))
    chance = float(np.max(np.bincount(y_val)) / len(y_val))
    print(f"validation accuracy {accuracy:.3f} (majority class {chance:.3f}) after "
          f"{time.time() - start:.0f} s of training")
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
    demo = commands.add_parser(
        "demo",
        help="train a DRN classifier on the embedded synthetic scenes and report accuracy",
        description="Trains a DRN classifier from scratch on the embedded synthetic scenes "
        "(disks, thin lines and squares on textured backgrounds) and prints its validation "
        "accuracy. Needs no download.",
    )
    demo.add_argument("--variant", default="drn_d_22", help="model name (keras-drn models)")
    demo.add_argument("--size", type=int, default=48, help="scene side in pixels")
    demo.add_argument("--train", type=int, default=384, help="number of training scenes")
    demo.add_argument("--val", type=int, default=128, help="number of validation scenes")
    demo.add_argument("--epochs", type=int, default=6, help="training epochs")
    demo.add_argument("--batch-size", type=int, default=32, help="batch size")
    demo.add_argument("--learning-rate", type=float, default=1e-3, help="AdamW learning rate")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and initialisation")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
