"""Training images/s of a DRN segmenter in one process vs two local processes on the same cores
(JAX, ``keras_drn.workflows.distribute``): the overhead of the multi-process route.

    python tools/benchmark_processes.py                      # drn_d_22, 32x32, batch 4
    python tools/benchmark_processes.py --variant drn_d_38 --size 64 --batch 8 --steps 10

Both sides train the same global batch with ``train_on_batch`` under
``keras.distribution.DataParallel``: one process pinned to all the given cores (XLA uses its
threads), or two processes (``jax.distributed`` on 127.0.0.1, gloo all-reduce) each pinned to
half of them and fed half the batch. Each side builds its model, runs ``--warmup`` untimed
steps (compilation), then ``--steps`` timed steps; images/s is global batch x steps / time
of process 0, and the ratio is two processes / one.

On one machine with C cores, two processes on C/2 cores each do the same arithmetic as one
process on C cores plus an all-reduce of every gradient, so the ratio is at most about 1: this
shows the overhead, not a speed-up. On a 2-core machine (one core per process) nothing can be
gained; a speed-up needs more machines (or accelerators) than one process could use.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

CHILD = """
import json, os, sys, time
cores, count, pid, port = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
variant, size, batch, steps, warmup = sys.argv[5], int(sys.argv[6]), int(sys.argv[7]), \\
    int(sys.argv[8]), int(sys.argv[9])
os.sched_setaffinity(0, cores)
from keras_drn.workflows import distribute
if count > 1:
    distribute.initialize(f"127.0.0.1:{port}", count, pid)
import keras
import numpy as np
import keras_drn
from keras_drn.workflows.training import compile_segmenter

keras.utils.set_random_seed(0)
rng = np.random.default_rng(pid)
local = batch // count
x = rng.uniform(0, 255, (local, size, size, 3)).astype("float32")
y = rng.integers(0, 19, (local, size, size)).astype("int32")
with distribute.data_parallel():
    model = keras_drn.DRNSegmenter(variant, num_classes=19, include_preprocessing=True)
    compile_segmenter(model, 19)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    distribute.barrier("timed steps")
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    elapsed = time.perf_counter() - start
print("RESULT " + json.dumps({"seconds": elapsed}), flush=True)
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_side(count, cores, args):
    """Seconds of process 0 for ``--steps`` steps with ``count`` processes on ``cores``."""
    share = len(cores) // count
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "PYTHONPATH": os.pathsep.join(
               [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                os.environ.get("PYTHONPATH", "")])}
    port = str(_free_port())
    procs = [subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(cores[i * share:(i + 1) * share]),
         str(count), str(i), port, args.variant, str(args.size), str(args.batch),
         str(args.steps), str(args.warmup)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(count)]
    outputs = [proc.communicate(timeout=args.timeout)[0] for proc in procs]
    lines = [line for line in outputs[0].splitlines() if line.startswith("RESULT ")]
    if any(proc.returncode for proc in procs) or not lines:
        raise SystemExit(f"{count} process(es) failed:\n" + "\n".join(o[-3000:] for o in outputs))
    return json.loads(lines[-1][len("RESULT "):])["seconds"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="drn_d_22", help="DRN variant (default drn_d_22)")
    parser.add_argument("--size", type=int, default=32, help="crop side (default 32)")
    parser.add_argument("--batch", type=int, default=4, help="global batch (default 4)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (default 2)")
    parser.add_argument("--cores", help="comma-separated core ids (default: the first two of "
                        "this process's; an even number)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per side")
    parser.add_argument("--output", metavar="FILE", help="also write the result as a "
                        "docs/benchmarks record (tools/benchmark_record.py)")
    args = parser.parse_args(argv)
    cores = ([int(c) for c in args.cores.split(",")] if args.cores
             else sorted(os.sched_getaffinity(0))[:2])
    if len(cores) < 2 or len(cores) % 2 or args.batch % 2:
        parser.error(f"need an even number of cores (got {cores}) and an even --batch "
                     f"(got {args.batch}) to split over two processes")
    print(f"{args.variant} segmenter, {args.size}x{args.size}, global batch {args.batch}, "
          f"{args.steps} timed steps after {args.warmup}, cores {cores}; JAX on CPU.")
    one = run_side(1, cores, args)
    two = run_side(2, cores, args)
    rates = {1: args.batch * args.steps / one, 2: args.batch * args.steps / two}
    print(f"1 process,   {len(cores)} cores:        {rates[1]:8.2f} images/s")
    print(f"2 processes, {len(cores) // 2} core(s) each:  {rates[2]:8.2f} images/s")
    print(f"ratio 2 processes / 1 process: {rates[2] / rates[1]:.2f}")
    print("Same cores on one machine: the ratio shows the cost of the second process and "
          "the all-reduce; it cannot show a speed-up (a 2-core machine least of all).")
    if args.output:
        write_record(args.output, args, len(cores), rates)
    return 0


def write_record(path, args, cores, rates):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchmark_record

    benchmark_record.write(path, benchmark_record.record(
        "Data-parallel processes on one machine, JAX on CPU",
        f"{args.variant} segmenter training steps, {args.size}x{args.size}, global batch "
        f"{args.batch}, {args.warmup} untimed then {args.steps} timed steps: one process on "
        f"{cores} cores vs two processes on {cores // 2} core(s) each.",
        [{"name": "timed steps", "align": "left"},
         {"name": "1 process img/s", "align": "right", "format": "{:.2f}"},
         {"name": "2 processes img/s", "align": "right", "format": "{:.2f}"},
         {"name": "ratio", "align": "right", "format": "{:.2f}"}],
        [[str(args.steps), rates[1], rates[2], rates[2] / rates[1]]]))


if __name__ == "__main__":
    sys.exit(main())
