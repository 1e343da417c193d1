"""Run the ``keras-drn demo`` recipe (``keras_drn.workflows.demo.RECIPE``) for several seeds, one
after the other, and record what each reached in a JSON file: validation IoU per class, mIoU,
optimizer steps, training seconds, and the machine (backend, dtype policy, CPU flags, package
versions, date).

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
import json
import os
import pathlib
import platform
import statistics
import tempfile
import time

import keras
import numpy as np

from keras_drn.atomic import write_atomically
from keras_drn.data import scene_split
from keras_drn.workflows import demo, precision

# keras_drn 0.1's demo: 768 scenes seen 10 times, cross-entropy alone, no context (480 steps of
# batch 16), every field spelled out so that a change of RECIPE leaves it as it was.
PREVIOUS = demo.DemoRecipe(variant="drn_d_22", head="gcn", context=None, size=48, train=768,
                           val=128, epochs=10, batch_size=16, learning_rate=2e-3,
                           loss="crossentropy", mixed_precision="auto")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The flags of ``CPU_FLAGS`` this CPU has (Linux; empty where unknown)."""
    try:
        with open(cpuinfo) as stream:
            for line in stream:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS if flag in flags]
    except OSError:
        pass
    return []


def environment():
    import importlib

    backend = keras.backend.backend()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backend": backend,
        "policy": precision.resolve(demo.RECIPE.mixed_precision),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        backend: importlib.import_module(backend).__version__,
        "numpy": np.__version__,
    }


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
    record = {
        "recipe": dataclasses.asdict(recipe),
        "steps": recipe.steps,
        "compute": {
            "previous_recipe": dataclasses.asdict(PREVIOUS),
            "previous_steps": PREVIOUS.steps,
            "step_seconds": ours,
            "previous_step_seconds": previous,
            "relative_step_cost": ours / previous,
            "relative_compute": recipe.steps * ours / (PREVIOUS.steps * previous),
            "timing": f"median of {args.rounds} interleaved rounds of {args.steps} steps",
        },
        "environment": environment(),
        "seeds": [],
    }
    print(f"step cost {ours:.3f} s against {previous:.3f} s for the previous recipe: "
          f"compute {record['compute']['relative_compute']:.2f}x the previous recipe's")
    pictures = args.pictures or tempfile.mkdtemp(prefix="demo_seeds_")
    for seed in seeds:
        result = demo.run(seed=seed, output=pathlib.Path(pictures) / f"demo_seed{seed}.png")
        record["seeds"].append({
            "seed": seed, "miou": result.miou, "iou": result.iou, "steps": result.steps,
            "train_seconds": result.train_seconds, "backend": result.backend,
            "policy": result.policy,
        })
        text = json.dumps(record, indent=2) + "\n"
        write_atomically(args.json, lambda path: pathlib.Path(path).write_text(text),
                         what="benchmark record")
        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
