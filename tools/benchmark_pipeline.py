"""Does the tf.data input pipeline keep training fed? Training step time with the real
pipeline (PNG files decoded, the reference's augmentation, batching, prefetch) against the
same model trained on tensors already in memory, in the same process.

    KERAS_BACKEND=jax python tools/benchmark_pipeline.py
    python tools/benchmark_pipeline.py --variant drn_d_22 --crop 256 --batch 8 --rounds 3

The files are synthetic scenes (``keras_drn.data.make_scenes``, ``--image-size`` pixels)
written as JPEG images and PNG masks in a temporary folder and read with
``keras_drn.data.image_mask_folders``; ``segmentation_pipeline(training=True)`` rotates,
rescales, crops ``--crop`` pixels and flips them, as ``keras-drn train`` does. The in-memory
baseline is ``model.fit`` on numpy arrays of one pipeline pass's batches. Each round times
one ``model.fit`` epoch of ``--steps`` steps for both, alternating (a first, compiling,
epoch of each is not timed); a step time is an epoch's wall time over its steps (``fit``
returns once the last step's loss is on the host), and the overhead is the median pipeline
step time over the median in-memory step time, minus 1.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time


def write_scenes(folder, count, size, seed=0):
    """Writes ``count`` synthetic scenes as ``images/i.jpg`` and ``masks/i.png``."""
    from PIL import Image

    from keras_drn.data import make_scenes

    images, masks, _ = make_scenes(count, size=size, seed=seed)
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for index, (image, mask) in enumerate(zip(images, masks)):
        Image.fromarray((image * 255).round().astype("uint8")).save(
            os.path.join(folder, "images", f"{index:05d}.jpg"), quality=90)
        Image.fromarray(mask.astype("uint8")).save(os.path.join(folder, "masks",
                                                                f"{index:05d}.png"))
    return os.path.join(folder, "images"), os.path.join(folder, "masks")


def run(variant="drn_d_22", images=64, image_size=320, crop=256, batch=4, steps=10, rounds=3,
        seed=0):
    """Returns a dict with the median step times (seconds) and the overhead ratio."""
    import keras
    import numpy as np

    import keras_drn
    from keras_drn.data import CLASS_NAMES, image_mask_folders, segmentation_pipeline

    keras.utils.set_random_seed(seed)
    with tempfile.TemporaryDirectory() as folder:
        image_dir, mask_dir = write_scenes(folder, images, image_size, seed)
        data = image_mask_folders(image_dir, mask_dir, len(CLASS_NAMES), CLASS_NAMES)
        pipeline = segmentation_pipeline(data, batch, training=True, crop_size=crop,
                                         seed=seed, repeat=True)
        batches = list(pipeline.take(images // batch).as_numpy_iterator())
        x_memory = np.concatenate([b[0] for b in batches])
        y_memory = np.concatenate([b[1] for b in batches])
        model = keras_drn.DRNSegmenter(variant, num_classes=len(CLASS_NAMES))
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                      ignore_class=255))
        runs = {
            "pipeline": lambda: model.fit(pipeline, steps_per_epoch=steps, shuffle=False,
                                          verbose=0),
            "in_memory": lambda: model.fit(x_memory, y_memory, batch_size=batch,
                                           steps_per_epoch=steps, shuffle=False, verbose=0),
        }
        for fit in runs.values():  # compiles; the pipeline's buffers fill
            fit()
        times = {name: [] for name in runs}
        for _ in range(rounds):
            for name, fit in runs.items():
                start = time.perf_counter()
                fit()  # returns after the epoch's last step, with its loss on the host
                times[name].append((time.perf_counter() - start) / steps)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "backend": keras.backend.backend(),
        "variant": variant,
        "batch": batch,
        "crop": crop,
        "pipeline_step_s": medians["pipeline"],
        "in_memory_step_s": medians["in_memory"],
        "overhead": medians["pipeline"] / medians["in_memory"] - 1,
        "rounds": rounds,
        "steps": steps,
    }


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="Keras backend (default: KERAS_BACKEND)")
    parser.add_argument("--variant", default="drn_d_22")
    parser.add_argument("--images", type=int, default=64, help="scenes written to disk")
    parser.add_argument("--image-size", type=int, default=320, help="side of the scenes")
    parser.add_argument("--crop", type=int, default=256, help="training crop (default 256)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", metavar="FILE", help="also write the result as a "
                        "docs/benchmarks record (tools/benchmark_record.py)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    r = run(args.variant, args.images, args.image_size, args.crop, args.batch, args.steps,
            args.rounds)
    print(f"{r['variant']} segmenter, batch {r['batch']} of {r['crop']}x{r['crop']} crops, "
          f"backend {r['backend']}, median of {r['rounds']} rounds of {r['steps']} steps:")
    print(f"  in-memory tensors:                     {r['in_memory_step_s'] * 1e3:8.1f} ms/step")
    print(f"  tf.data (decode, augment, prefetch):   {r['pipeline_step_s'] * 1e3:8.1f} ms/step")
    print(f"  pipeline overhead: {r['overhead'] * 100:+.1f}%")
    if args.output:
        write_record(args.output, r, args.images, args.image_size)
    return 0


def record_rows(r):
    return [["tf.data pipeline", r["pipeline_step_s"] * 1e3],
            ["in-memory tensors", r["in_memory_step_s"] * 1e3]]


def write_record(path, r, images, image_size):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchmark_record

    benchmark_record.write(path, benchmark_record.record(
        f"tf.data input pipeline vs in-memory tensors, {r['backend']}",
        f"{r['variant']} segmenter, batch {r['batch']} of {r['crop']}x{r['crop']} crops from "
        f"{images} JPEG/PNG scenes of {image_size}x{image_size} (decode, rotate, rescale, "
        f"crop, flip, prefetch), median of {r['rounds']} rounds of {r['steps']} steps.",
        [{"name": "input", "align": "left"},
         {"name": "ms/step", "align": "right", "format": "{:.0f}"}],
        record_rows(r), notes=[f"pipeline overhead {r['overhead'] * 100:+.1f}%"]))


if __name__ == "__main__":
    sys.exit(main())
