"""Run the ``keras-drn demo`` recipe (``keras_drn.workflows.demo.RECIPE``) for several seeds, one
after the other, and record what each reached as a benchmark record (``tools/benchmark_record.py``,
from which the speed guide is generated): validation IoU per class, mIoU, optimizer steps,
training seconds, the policy and the machine (CPU flags, package versions, date).

    KERAS_BACKEND=tensorflow python tools/demo_seeds.py --json docs/benchmarks/demo.json

The file is rewritten after every seed, so a run stopped early keeps the seeds that finished.
It also records the training compute against the recipe of keras_drn 0.1's demo (768 scenes,
10 epochs, cross-entropy: ``PREVIOUS``): wall-clock seconds on a shared machine say little, so
the per-step cost of both recipes is measured in this process, interleaved (``--rounds``
rounds of ``--steps`` training steps each, after two warm-up steps), and the ratio reported is
``steps x median step time`` of the recipe over the same product for ``PREVIOUS``.
"""

import argparse
import dataclasses
import os
import pathlib
import statistics
import sys
import tempfile
import time

import keras

from keras_drn.data import CLASS_NAMES, scene_split
from keras_drn.workflows import demo, precision

# keras_drn 0.1's demo: 768 scenes seen 10 times, cross-entropy alone, no context (480 steps of
# batch 16), every field spelled out so that a change of RECIPE leaves it as it was.
PREVIOUS = demo.DemoRecipe(variant="drn_d_22", head="gcn", context=None, size=48, train=768,
                           val=128, epochs=10, batch_size=16, learning_rate=2e-3,
                           loss="crossentropy", mixed_precision="auto")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark_record  # noqa: E402  (tools/: the one format of measured numbers)


def step_seconds(recipes, rounds, steps):
    """Median seconds of one training step of each recipe, measured interleaved: after two
    warm-up steps per model, ``rounds`` rounds in which each model runs ``steps`` steps."""
    models, batches = [], []
    for recipe in recipes:
        precision.apply(recipe.mixed_precision)
        x, y, _, _, moments = scene_split(recipe.batch_size, 1, size=recipe.size, seed=0)
        model = demo.build_model(recipe, moments)
        for _ in range(2):
            model.train_on_batch(x, y)
        models.append(model)
        batches.append((x, y))
    times = [[] for _ in recipes]
    for _ in range(rounds):
        for model, (x, y), measured in zip(models, batches, times):
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            measured.append((time.perf_counter() - start) / steps)
    keras.backend.clear_session()
    return [statistics.median(measured) for measured in times]


def table(recipe, rows, relative, ours, previous, args):
    """The benchmark record (``tools/benchmark_record.py``) of the seeds run so far."""
    columns = [{"name": "seed", "align": "right"},
               {"name": "mIoU %", "align": "right", "format": "{:.1f}"},
               *({"name": f"{name} IoU %", "align": "right", "format": "{:.1f}"}
                 for name in CLASS_NAMES),
               {"name": "steps", "align": "right"},
               {"name": "training s", "align": "right", "format": "{:.0f}"},
               {"name": "precision", "align": "left"}]
    recipe_text = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(recipe).items())
    return benchmark_record.record(
        f"keras-drn demo, seeds {', '.join(str(row[0]) for row in rows)} "
        f"({keras.backend.backend()} backend)",
        f"keras-drn demo's recipe ({recipe_text}): validation IoU per class after training "
        "from scratch on the embedded scenes, one seed after the other.",
        columns, rows,
        notes=[f"Training compute {relative:.2f}x keras_drn 0.1's demo recipe (480 steps of "
               "batch 16, cross-entropy): steps x median step time, measured in the same "
               f"process, interleaved ({args.rounds} rounds of {args.steps} steps: "
               f"{ours:.3f} s against {previous:.3f} s a step).",
               "Training seconds are wall-clock on the machine named, which may have been "
               "shared; the compute ratio is the comparable number."])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="docs/benchmarks/demo.json", help="file to write")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the step timing")
    parser.add_argument("--steps", type=int, default=3, help="steps per round and recipe")
    parser.add_argument("--pictures", default=None,
                        help="folder for each seed's demo picture (default: a temporary one)")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]

    recipe = demo.RECIPE
    ours, previous = step_seconds([recipe, PREVIOUS], args.rounds, args.steps)
    relative = recipe.steps * ours / (PREVIOUS.steps * previous)
    print(f"step cost {ours:.3f} s against {previous:.3f} s for the previous recipe: "
          f"compute {relative:.2f}x the previous recipe's")
    pictures = args.pictures or tempfile.mkdtemp(prefix="demo_seeds_")
    rows = []
    for seed in seeds:
        result = demo.run(seed=seed, output=pathlib.Path(pictures) / f"demo_seed{seed}.png")
        rows.append([seed, 100 * result.miou, *(100 * result.iou[name] for name in CLASS_NAMES),
                     result.steps, result.train_seconds, result.policy])
        benchmark_record.write(args.json, table(recipe, rows, relative, ours, previous, args))
        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
