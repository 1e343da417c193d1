"""Why the JAX backend is slow on a CPU: XLA's CPU convolution and matrix product against
oneDNN's (through PyTorch, the reference's framework, in the same process), in float32 and
bfloat16, under each of XLA's CPU flags that could route them elsewhere.

    python tools/benchmark_xla_cpu.py
    python tools/benchmark_xla_cpu.py --flag= --flag=--xla_cpu_use_onednn=true --rounds 5

Each flag setting runs in its own process (``XLA_FLAGS`` is read when JAX starts). The
workloads are DRN's: a 3x3 convolution 512 -> 512 on 8x28x28 (DRN-C/D levels 5-8 at 224x224,
batch 8), at dilation 1 and 4, and the same work as one matrix product (6272 x 4608 by 4608 x
512, what an im2col convolution would run). Rounds alternate JAX and PyTorch; printed: GFLOP/s
of each and the ratio JAX / PyTorch (medians). A flag unknown to this jaxlib makes that run
fail with XLA's own message.
"""

import argparse
import json
import os
import subprocess
import sys

FLAGS = ("", "--xla_cpu_use_onednn=true", "--xla_cpu_experimental_onednn_custom_call=true",
         "--xla_cpu_use_xnnpack=true", "--xla_cpu_use_thunk_runtime=false")
WORKLOADS = ("conv d1", "conv d4", "matmul")


def _child(rounds, steps):
    """Runs in the subprocess: prints one JSON line of {dtype: {workload: [jax, torch]}}."""
    import statistics
    import time

    import jax
    import numpy as np
    import torch

    def timed(run):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        return (time.perf_counter() - start) / steps

    results = {}
    rng = np.random.default_rng(0)
    for dtype in ("float32", "bfloat16"):
        jdt, tdt = jax.numpy.dtype(dtype), getattr(torch, dtype)
        x = rng.random((8, 28, 28, 512), "float32")
        w = rng.random((3, 3, 512, 512), "float32") * 0.01
        a, b = rng.random((6272, 4608), "float32"), rng.random((4608, 512), "float32")
        jx, jw, ja, jb = (jax.numpy.asarray(v, jdt) for v in (x, w, a, b))
        tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(tdt)
        tw = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).to(tdt)
        ta, tb = torch.from_numpy(a).to(tdt), torch.from_numpy(b).to(tdt)
        cases = {}
        for dilation in (1, 4):
            conv = jax.jit(lambda x, w, d=dilation: jax.lax.conv_general_dilated(
                x, w, (1, 1), "SAME", rhs_dilation=(d, d),
                dimension_numbers=("NHWC", "HWIO", "NHWC")))
            cases[f"conv d{dilation}"] = (
                lambda conv=conv: conv(jx, jw).block_until_ready(),
                lambda d=dilation: torch.nn.functional.conv2d(tx, tw, padding=d, dilation=d),
                2 * 9 * x.size * 512)
        product = jax.jit(lambda a, b: a @ b)
        cases["matmul"] = (lambda: product(ja, jb).block_until_ready(), lambda: ta @ tb,
                           2 * a.shape[0] * a.shape[1] * b.shape[1])
        results[dtype] = {}
        with torch.no_grad():
            for name, (run_jax, run_torch, flops) in cases.items():
                run_jax(), run_torch()  # compile / warm up
                times = [[], []]
                for _ in range(rounds):
                    times[0].append(timed(run_jax))
                    times[1].append(timed(run_torch))
                results[dtype][name] = [flops / statistics.median(t) / 1e9 for t in times]
    print(json.dumps(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flag", action="append", dest="flags", metavar="XLA_FLAGS",
                        help="an XLA_FLAGS setting to try (repeat; write --flag=--xla_...; "
                        "default: none, then each flag of FLAGS alone)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--output", metavar="FILE", help="also write the table as a "
                        "docs/benchmarks record (tools/benchmark_record.py)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.rounds, args.steps)
    import jax
    import torch

    print(f"jax {jax.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs; "
          "GFLOP/s (JAX | PyTorch) and JAX / PyTorch")
    print(f"{'XLA_FLAGS':48} {'dtype':9} " + " ".join(f"{w:>22}" for w in WORKLOADS))
    table = []
    for flags in args.flags or FLAGS:
        env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
        done = subprocess.run([sys.executable, __file__, "--child", "--rounds", str(args.rounds),
                               "--steps", str(args.steps)], env=env, capture_output=True,
                              text=True)
        if done.returncode:
            print(f"{flags or '(none)':48} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        results = json.loads(done.stdout.strip().splitlines()[-1])
        table.extend(record_rows(flags, results))
        for dtype, row in results.items():
            cells = [f"{j:5.0f} | {t:4.0f} {j / t:5.2f}x" for j, t in (row[w] for w in WORKLOADS)]
            print(f"{flags or '(none)':48} {dtype:9} " + " ".join(f"{c:>22}" for c in cells))
    if args.output:
        write_record(args.output, table, args.rounds, args.steps)
    return 0


def record_rows(flags, results):
    """One row per XLA_FLAGS setting, dtype and workload: GFLOP/s of JAX and PyTorch."""
    return [[flags or "(none)", dtype, workload, jax_rate, torch_rate, jax_rate / torch_rate]
            for dtype, row in results.items() for workload in WORKLOADS
            for jax_rate, torch_rate in [row[workload]]]


def write_record(path, rows, rounds, steps):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchmark_record

    benchmark_record.write(path, benchmark_record.record(
        "XLA's CPU convolution and matrix product vs PyTorch's oneDNN",
        f"JAX against PyTorch in the same process, each XLA_FLAGS setting in its own process, "
        f"median of {rounds} rounds of {steps} steps.",
        [{"name": "XLA_FLAGS", "align": "left"}, {"name": "dtype", "align": "left"},
         {"name": "workload", "align": "left"},
         {"name": "JAX GFLOP/s", "align": "right", "format": "{:.0f}"},
         {"name": "PyTorch GFLOP/s", "align": "right", "format": "{:.0f}"},
         {"name": "JAX / PyTorch", "align": "right", "format": "{:.2f}x"}], rows))


if __name__ == "__main__":
    sys.exit(main())
