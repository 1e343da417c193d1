"""Train DRN-A/C/D segmenters with and without adaptive anti-aliasing on the embedded scenes,
with one fixed budget and seed, and print one table: mIoU, IoU of the thin "line" class,
shift consistency, parameters and images/s.

The papers' claims under test: DRN-C/D's degridding levels remove the gridding artefacts of
DRN-A's dilated stages and keep thin structures (Yu, Koltun, Funkhouser, CVPR 2017,
section 4), and adaptive anti-aliasing makes predictions more shift consistent (Zou, Xiao,
Yu, Lee, BMVC 2020). Every model sees the same scenes, in the same order, from the same seed,
with the ``keras-drn demo`` recipe (AdamW, polynomial decay, in-memory arrays).

    KERAS_BACKEND=jax python tools/compare_variants.py --json compare.json \
        --figure docs/activation_maps.png

``--figure`` also renders the strongest feature maps of the trained backbones without
anti-aliasing (``tools/activation_maps.py``).
"""

import argparse
import json
import pathlib
import sys
import time

import keras
import numpy as np

import keras_drn
from keras_drn.evaluation.consistency import segmentation_consistency
from keras_drn.data import CLASS_NAMES, scene_split
from keras_drn.evaluation import confusion_matrix, iou_per_class
from keras_drn.workflows.training import compile_segmenter

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import activation_maps  # noqa: E402  (tools/activation_maps.py, beside this file)

BACKBONES = ("drn_a_18", "drn_c_26", "drn_d_22")
ANTI_ALIAS = ("none", "adaptive")
LINE = CLASS_NAMES.index("line")


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def train_one(backbone, anti_alias, data, epochs, batch_size, learning_rate, head, seed,
              shifts):
    """Trains one segmenter and measures it; returns ``(model, row)``."""
    x_train, y_train, x_val, y_val, statistics = data  # raw 0-255 images
    keras.utils.set_random_seed(seed)
    model = keras_drn.DRNSegmenter(backbone, num_classes=len(CLASS_NAMES), head=head,
                                   anti_alias=None if anti_alias == "none" else anti_alias,
                                   include_preprocessing=True, mean=statistics[0],
                                   std=statistics[1])
    steps = epochs * -(-len(x_train) // batch_size)
    schedule = keras.optimizers.schedules.PolynomialDecay(learning_rate, steps, power=0.9)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)  # keras-drn demo's recipe
    compile_segmenter(model, len(CLASS_NAMES), optimizer=optimizer)
    timer = _EpochTimer()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0,
              shuffle=True, callbacks=[timer])
    train_seconds = time.perf_counter() - start
    # Steady-state throughput: the first epoch also compiles, leave it out when there are more.
    timed = timer.times[1:] or timer.times
    train_rate = len(x_train) * len(timed) / sum(timed)

    model.predict(x_val[:batch_size], batch_size=batch_size, verbose=0)  # compile
    start = time.perf_counter()
    scores = model.predict(x_val, batch_size=batch_size, verbose=0)
    infer_rate = len(x_val) / (time.perf_counter() - start)
    predictions = np.argmax(scores, axis=-1)
    ious = iou_per_class(confusion_matrix(y_val, predictions, len(CLASS_NAMES)))
    consistency = segmentation_consistency(model, x_val, shifts, batch_size=batch_size)
    row = {
        "backbone": backbone,
        "anti_alias": anti_alias,
        "miou": float(np.nanmean(ious)),
        "iou": {name: float(v) for name, v in zip(CLASS_NAMES, ious)},
        "line_iou": float(ious[LINE]),
        "consistency": consistency.consistency,
        "consistency_per_shift": {str(d): v for d, v in consistency.per_shift.items()},
        "parameters": int(model.count_params()),
        "train_images_per_s": train_rate,
        "inference_images_per_s": infer_rate,
        "train_seconds": train_seconds,
    }
    return model, row


def format_table(rows):
    """The comparison as a markdown table (percentages for the scores)."""
    lines = [
        "| backbone | anti_alias | mIoU | line IoU | shift consistency | parameters "
        "| train img/s | infer img/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['backbone']} | {r['anti_alias']} | {100 * r['miou']:.1f} "
            f"| {100 * r['line_iou']:.1f} | {100 * r['consistency']:.1f} "
            f"| {r['parameters']:,} | {r['train_images_per_s']:.1f} "
            f"| {r['inference_images_per_s']:.1f} |"
        )
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train DRN-A-18, DRN-C-26 and DRN-D-22 segmenters with and without "
        "adaptive anti-aliasing on the embedded synthetic scenes (one budget, one seed) and "
        "print mIoU, thin-line IoU, shift consistency, parameters and images/s. The backend "
        "is KERAS_BACKEND's (jax is the fastest on CPUs).")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES),
                        help="DRN variants (default: drn_a_18 drn_c_26 drn_d_22)")
    parser.add_argument("--anti-alias", nargs="+", default=list(ANTI_ALIAS),
                        choices=["none", "blur", "adaptive"],
                        help="anti-aliasing settings to try (default: none adaptive)")
    parser.add_argument("--head", default="gcn", choices=["drn", "gcn"],
                        help="segmentation head (default gcn, as keras-drn demo: at 48x48 the "
                        "drn head's 6x6 output-stride-8 map cannot draw 1-3 pixel lines)")
    parser.add_argument("--size", type=int, default=48, help="scene side (default 48)")
    parser.add_argument("--train", type=int, default=384, help="training scenes (default 384)")
    parser.add_argument("--val", type=int, default=96, help="validation scenes (default 96)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per model (default 5)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="AdamW peak learning rate (default 2e-3)")
    parser.add_argument("--max-shift", type=int, default=8,
                        help="shift consistency over diagonal shifts 1..N pixels (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of scenes and weights")
    parser.add_argument("--json", help="also write the results (settings and rows) here")
    parser.add_argument("--figure",
                        help="write the activation-map PNG of the models without anti-aliasing")
    parser.add_argument("--figure-size", type=int, default=192,
                        help="side of the scene shown in the figure (default 192)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "figure")}
    settings["backend"] = keras.backend.backend()
    data = scene_split(args.train, args.val, args.size, args.seed)
    print(f"{args.train} training and {args.val} validation scenes of {args.size}x{args.size}, "
          f"{args.epochs} epochs, batch {args.batch_size}, seed {args.seed}, backend "
          f"{settings['backend']}", flush=True)
    rows, plain = [], {}
    start = time.perf_counter()
    for backbone in args.backbones:
        for anti_alias in args.anti_alias:
            model, row = train_one(backbone, anti_alias, data, args.epochs, args.batch_size,
                                   args.learning_rate, args.head, args.seed,
                                   range(1, args.max_shift + 1))
            rows.append(row)
            if anti_alias == "none":
                plain[backbone] = model
            print(f"{backbone} anti_alias={anti_alias}: mIoU {100 * row['miou']:.1f}, line "
                  f"{100 * row['line_iou']:.1f}, consistency {100 * row['consistency']:.1f}, "
                  f"{row['train_seconds']:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    print(format_table(rows))
    print(f"total {elapsed:.0f} s")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"settings": settings, "rows": rows, "seconds": elapsed}, indent=2))
        print(f"wrote {args.json}")
    if args.figure:
        if not plain:
            raise SystemExit("--figure needs models without anti-aliasing (--anti-alias none).")
        image = activation_maps.figure_scene(args.figure_size, args.seed)
        activation_maps.save_figure(plain, image, 255 * image, args.figure)
        print(f"wrote {args.figure}")
    return rows


if __name__ == "__main__":
    main()
