"""Where a CPU step's time goes: oneDNN primitives of keras_drn (TensorFlow backend) and of
the reference PyTorch code (github fyu/drn), the same workload, grouped and summed.

    python tools/profile_onednn.py --variant drn_d_22 --task segmentation --size 128 \\
        --batch 4 --mode training --precision float32 --reference ~/drn

Both TensorFlow and PyTorch run their CPU convolutions, batch normalisations, poolings and
reorders through oneDNN, which prints one line per executed primitive, with its time, when
``ONEDNN_VERBOSE=1`` is set before it loads. Each side runs in its own subprocess (the variable
would otherwise make both libraries print into one stream), builds the workload exactly as
``tools/benchmark.py`` does, runs ``--warmup`` steps, then ``--steps`` steps with the verbose
output on; this tool sums the executed primitives by kind, implementation, direction and
problem (shapes) and prints, per side: the step's wall time, the part spent inside oneDNN, and
the top groups. What is not oneDNN (TensorFlow's Eigen ops, PyTorch's ATen kernels, Python,
the optimiser) is the difference. Verbose output slows both sides a little; compare the
groups, and take speed ratios from ``tools/benchmark.py``.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402  (tools/benchmark.py: the same workloads and sides)

_MARK = "keras_drn_profile:"


def parse_verbose(lines):
    """``(kind, implementation, direction, problem) -> [milliseconds, calls]`` from oneDNN's
    ``exec`` lines (oneDNN 3.x format, with or without the ``v1`` field)."""
    groups = collections.defaultdict(lambda: [0.0, 0])
    for line in lines:
        if not line.startswith("onednn_verbose,"):
            continue
        fields = line.rstrip("\n").split(",")
        if "exec" not in fields[:4]:
            continue
        start = fields.index("exec") + 1  # engine, kind, impl, direction, memory, attrs,
        try:                                # aux, problem, time
            _, kind, impl, direction = fields[start:start + 4]
            milliseconds = float(fields[-1])
        except ValueError:
            continue
        problem = fields[-2]
        if kind == "reorder":  # name a reorder by its layouts: the problem is only a shape
            problem = f"{_layouts(fields[start + 4])} {problem}"
        group = groups[(kind, impl, direction, problem)]
        group[0] += milliseconds
        group[1] += 1
    return dict(groups)


def _layouts(memory):
    """``f32::blocked:abcd::f0 f32::blocked:Acdb16a::f0`` -> ``f32 abcd -> f32 Acdb16a``."""
    parts = []
    for descriptor in memory.split():
        pieces = descriptor.split(":")
        dtype = next((p for p in pieces if re.fullmatch(r"[a-z]+\d*", p)
                      and p not in ("blocked", "src", "dst", "wei", "bia")), "?")
        layout = pieces[pieces.index("blocked") + 1] if "blocked" in pieces else "?"
        parts.append(f"{dtype} {layout}")
    return " -> ".join(parts)


def _side(args):
    """In the subprocess: build one side, warm up, then mark the timed steps on stdout."""
    workload = benchmark.Workload(args.variant, args.task, *args.size, args.batch, args.mode)
    if args.side == "reference":
        side = benchmark.ReferenceSide(benchmark.import_reference(args.reference), workload,
                                       args.precision)
    else:
        side = benchmark.KerasSide(workload, args.precision, "auto")
    for _ in range(args.warmup):
        side.step()
    print(_MARK + "start", flush=True)  # oneDNN flushes each verbose line itself
    start = time.perf_counter()
    for _ in range(args.steps):
        side.step()
    seconds = time.perf_counter() - start
    print(_MARK + json.dumps({"step_ms": 1000 * seconds / args.steps}), flush=True)


def profile_side(side, args):
    """Runs one side in a subprocess with ONEDNN_VERBOSE=1; returns (step ms, groups per
    step)."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", KERAS_BACKEND="tensorflow")
    command = [sys.executable, os.path.abspath(__file__), "--side", side,
               "--variant", args.variant, "--task", args.task,
               "--size", f"{args.size[0]}x{args.size[1]}", "--batch", str(args.batch),
               "--mode", args.mode, "--precision", args.precision,
               "--warmup", str(args.warmup), "--steps", str(args.steps)]
    if args.reference:
        command += ["--reference", args.reference]
    process = subprocess.run(command, env=env, capture_output=True, text=True)
    if process.returncode:
        raise SystemExit(f"the {side} side failed:\n{process.stderr[-4000:]}")
    lines = process.stdout.splitlines()
    try:
        begin = lines.index(_MARK + "start")
    except ValueError:
        raise SystemExit(f"the {side} side printed no timed steps:\n{process.stdout[-2000:]}")
    end = next(i for i in range(len(lines) - 1, begin, -1) if lines[i].startswith(_MARK))
    step_ms = json.loads(lines[end][len(_MARK):])["step_ms"]
    groups = parse_verbose(lines[begin + 1:end])
    per_step = {key: (ms / args.steps, calls / args.steps) for key, (ms, calls) in groups.items()}
    return step_ms, per_step


def summarise(step_ms, groups, top):
    """Text: the step, oneDNN's share, totals by kind and direction, and the top groups."""
    total = sum(ms for ms, _ in groups.values())
    lines = [f"step {step_ms:.1f} ms, oneDNN {total:.1f} ms ({100 * total / step_ms:.0f}%), "
             f"other {step_ms - total:.1f} ms"]
    by_kind = collections.defaultdict(float)
    for (kind, _, direction, _), (ms, _) in groups.items():
        by_kind[f"{kind} {direction}"] += ms
    for name, ms in sorted(by_kind.items(), key=lambda item: -item[1]):
        lines.append(f"  {ms:8.1f} ms  {name}")
    lines.append(f"  top {top} groups (ms per step, calls per step):")
    ranked = sorted(groups.items(), key=lambda item: -item[1][0])[:top]
    for (kind, impl, direction, problem), (ms, calls) in ranked:
        lines.append(f"  {ms:8.1f} ms {calls:4.0f}x  {kind} {impl} {direction} {problem}")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="drn_d_22")
    parser.add_argument("--task", choices=benchmark.TASKS, default="segmentation")
    parser.add_argument("--size", type=benchmark.parse_size, default=(128, 128))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--mode", choices=benchmark.MODES, default="training")
    parser.add_argument("--precision", choices=benchmark.PRECISIONS, default="float32")
    parser.add_argument("--reference", metavar="DIR",
                        help="a checkout of github.com/fyu/drn: also profile the reference")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="groups listed per side")
    parser.add_argument("--side", choices=("keras_drn", "reference"), help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.side:
        return _side(args)
    sides = ["keras_drn"] + (["reference"] if args.reference else [])
    print(f"{args.variant} {args.task} {args.size[0]}x{args.size[1]} b{args.batch} "
          f"{args.mode} {args.precision}, {args.steps} steps after {args.warmup}")
    for side in sides:
        step_ms, groups = profile_side(side, args)
        print(f"\n{side}: " + summarise(step_ms, groups, args.top))


if __name__ == "__main__":
    main()
