"""The GPU check of issue 17: phase == direct on the GPU, a dilated-conv microbenchmark, and the
issue's workloads for JAX (direct and phase execution of the dilated levels), the Keras torch
backend and the reference PyTorch DRN, in float32 and bfloat16, with peak memory.

    bash tools/gpu_check.sh               # on the GPU machine (installs the carried wheels)
    bash tools/gpu_check.sh --quick       # a short rerun: bfloat16, two workloads
    python tools/gpu_benchmark.py --tiny  # here, on the CPU: the whole plan at toy sizes

Each item runs in its own process (this script with ``--item``), so every Keras side gets a
fresh backend and its own allocator peak (JAX has no way to reset ``peak_bytes_in_use``); the
Keras torch-backend side and the reference share one process and alternate timed rounds
(``tools/benchmark.py``'s ``run_workload``). Items run in order of importance (the check, the
conv microbenchmark, then bfloat16 before float32) until ``--budget`` seconds are spent; the
rest are recorded as skipped. After every item the results so far are written to
``OUT/gpu_check.json``, so a run stopped at its time limit still brings back what it measured.

The reference is ``drn.py`` from a checkout of github.com/fyu/drn given with ``--reference``
(default ``.gpu/drn`` when it holds one); without one, ``tests/weights/torch_reference.py`` (an
independent PyTorch DRN with the reference's modules, written from SPECS.md) stands in, and
the JSON says so. Nothing here imports TensorFlow, which the GPU machine does not have: it is
blocked in every process and the run fails if anything tried to import it.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRECISIONS = ("mixed_bfloat16", "float32")


def _load(name, *path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_benchmark():
    return _load("benchmark", "tools", "benchmark.py")


def block_tensorflow():
    """Makes ``import tensorflow`` fail in this process, as on the GPU machine."""
    sys.modules["tensorflow"] = None


# ---------------------------------------------------------------- the plan


def workloads(tiny, quick):
    from_benchmark = _load_benchmark()
    Workload = from_benchmark.Workload
    if tiny:
        chosen = (
            Workload("drn_c_26", "classification", 64, 64, 2, "training"),
            Workload("drn_d_22", "segmentation", 64, 64, 1, "training"),
            Workload("drn_d_22", "segmentation", 64, 128, 1, "inference"),
        )
    else:
        chosen = from_benchmark.SUITES["gpu"]
    return chosen[:2] if quick else chosen


def plan(args):
    """The ordered items: dicts that ``run_item`` executes in a child process."""
    items = [{"kind": "check"}, {"kind": "conv"}]
    precisions = ("mixed_bfloat16",) if args.quick else PRECISIONS
    for precision in precisions:
        for workload in workloads(args.tiny, args.quick):
            w = dataclasses.asdict(workload)
            for strategy in ("direct", "phase"):
                items.append({"kind": "keras", "backend": "jax", "strategy": strategy,
                              "workload": w, "precision": precision})
            items.append({"kind": "torch", "workload": w, "precision": precision})
    return items


def timing(args):
    if args.tiny:
        return {"warmup": 1, "steps": 1, "rounds": 1}
    if args.quick:
        return {"warmup": 2, "steps": 3, "rounds": 2}
    return {"warmup": 2, "steps": 3, "rounds": 3}


# ---------------------------------------------------------------- items (child processes)


def _reference(directory):
    """(drn module, segment module or None, description) of the reference."""
    benchmark = _load_benchmark()
    if directory and os.path.isfile(os.path.join(directory, "drn.py")):
        drn, segment = benchmark.import_reference(directory)
        return drn, segment, f"drn.py of {os.path.abspath(directory)}"
    sys.path.insert(0, ROOT)
    from keras_drn.models.drn import VARIANTS, feature_info
    from tests.weights.torch_reference import Net

    drn = types.ModuleType("drn")

    def constructor(name):
        spec = VARIANTS[name]

        def build(pretrained=False, num_classes=1000):
            model = Net(spec.arch, spec.block == "bottleneck", spec.depths, num_classes)
            model.out_dim = feature_info(name)[-1]["channels"]
            return model

        return build

    for name in VARIANTS:
        setattr(drn, name, constructor(name))
    return drn, None, "stand-in: tests/weights/torch_reference.py (no fyu/drn checkout given)"


def _max_relative(a, b):
    import numpy as np

    a, b = np.asarray(a, "float32"), np.asarray(b, "float32")
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))


def check_item(tiny):
    """phase == direct on this device: outputs (inference and training-mode BN), the update
    of one SGD step (lr 1: minus the gradient) for every weight, float32 and bfloat16."""
    import jax
    import keras
    import numpy as np

    import keras_drn

    # float32 convolutions in full float32 (not TF32) while comparing: the two strategies
    # then differ by summation order only, so 1e-3 separates a bug from rounding.
    jax.config.update("jax_default_matmul_precision", "highest")
    size = 32 if tiny else 64
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size, 3)).astype("float32")
    results = []
    for variant in ("drn_d_22",) if tiny else ("drn_d_22", "drn_c_26", "drn_a_18"):
        for precision in ("float32", "mixed_bfloat16") if variant == "drn_d_22" else ("float32",):
            keras.config.set_dtype_policy(precision)
            models = [keras_drn.get_model(variant, include_top=False, input_shape=(size, size, 3),
                                          dilation_strategy=s) for s in ("direct", "phase")]
            models[1].set_weights(models[0].get_weights())
            row = {"variant": variant, "precision": precision, "size": size}
            for training in (False, True):
                outs = [keras.ops.convert_to_numpy(keras.ops.cast(m(x, training=training),
                                                                  "float32")) for m in models]
                row[f"output_{'training' if training else 'inference'}"] = _max_relative(*outs)
            if precision == "float32":
                target = rng.normal(size=outs[0].shape).astype("float32")
                deltas = []
                for model in models:
                    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
                    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
                    model.train_on_batch(x, target)
                    deltas.append([keras.ops.convert_to_numpy(w) - b
                                   for w, b in zip(model.weights, before)])
                row["update"] = max(_max_relative(p, d) for p, d in zip(*deltas[::-1])
                                    if np.abs(d).max() > 0)
            limit = 1e-3 if precision == "float32" else 5e-2
            row["ok"] = all(v <= limit for k, v in row.items()
                            if k.startswith(("output", "update")))
            results.append(row)
            keras.config.set_dtype_policy("float32")
            keras.backend.clear_session()
    return {"rows": results, "ok": all(r["ok"] for r in results)}


def _time(fn, args, sync, repeats):
    for _ in range(3):
        sync(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(fn(*args))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def conv_item(tiny):
    """3x3 conv 256 -> 256 on 8x112x112, forward + backward, ms: JAX direct (dilated), JAX
    phase (SpaceToPhase, undilated conv, PhaseToSpace) and PyTorch (cuDNN, channels_last)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    batch, size, channels = (2, 16, 8) if tiny else (8, 112, 256)
    repeats = 3 if tiny else 20
    rows = []
    for dtype in ("float32", "bfloat16"):
        x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, channels)),
                        dtype)
        w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, channels, channels)) * 0.03,
                        dtype)
        for d in (1, 2, 4):
            def direct(x, w, d=d):
                return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", rhs_dilation=(d, d),
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

            def phase(x, w, d=d):
                b, h, wd, c = x.shape
                y = x.reshape(b, h // d, d, wd // d, d, c).transpose(2, 4, 0, 1, 3, 5)
                y = y.reshape(-1, h // d, wd // d, c)
                y = jax.lax.conv_general_dilated(y, w, (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
                y = y.reshape(d, d, b, h // d, wd // d, c).transpose(2, 3, 0, 4, 1, 5)
                return y.reshape(b, h, wd, c)

            row = {"dtype": dtype, "dilation": d}
            for name, f in (("jax_direct_ms", direct), ("jax_phase_ms", phase)):
                grad = jax.jit(jax.grad(lambda x, w, f=f: jnp.sum(f(x, w).astype("float32")),
                                        argnums=(0, 1)))
                row[name] = _time(grad, (x, w), jax.block_until_ready, repeats)
            row["torch_ms"] = _torch_conv_ms(torch, batch, size, channels, dtype, d, repeats)
            rows.append(row)
    return {"shape": [batch, size, size, channels], "rows": rows}


def _torch_conv_ms(torch, batch, size, channels, dtype, d, repeats):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    dt = getattr(torch, dtype)
    x = torch.randn(batch, channels, size, size, device=device, dtype=dt).to(
        memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(channels, channels, 3, 3, device=device, dtype=dt) * 0.03).to(
        memory_format=torch.channels_last).requires_grad_()

    def step(x, w):
        torch.nn.functional.conv2d(x, w, padding=d, dilation=d).float().sum().backward()

    def sync(_):
        if device == "cuda":
            torch.cuda.synchronize()

    return _time(step, (x, w), sync, repeats)


def keras_item(item, timings, reference_dir):
    benchmark = _load_benchmark()
    workload = benchmark.Workload(**item["workload"])
    reference = None
    result = {}
    if item["kind"] == "torch":
        drn, segment, source = _reference(reference_dir)
        reference = (drn, segment)
        result["reference_source"] = source
    measured = benchmark.run_workload(workload, item["precision"], "auto", reference,
                                      timings["warmup"], timings["steps"], timings["rounds"],
                                      dilation_strategy=item.get("strategy", "auto"))
    result.update(measured)
    return result


def run_item(item, args):
    block_tensorflow()
    sys.path.insert(0, ROOT)
    if item["kind"] == "check":
        result = check_item(args.tiny)
    elif item["kind"] == "conv":
        result = conv_item(args.tiny)
    else:
        result = keras_item(item, timing(args), args.reference)
    assert sys.modules.get("tensorflow") is None, "something imported tensorflow"
    benchmark = _load_benchmark()
    result["environment"] = benchmark.environment(reference=item["kind"] in ("torch", "conv"))
    return result


# ---------------------------------------------------------------- the driver


def _child(item, args, timeout):
    env = dict(os.environ, KERAS_BACKEND=item.get("backend", "torch" if item["kind"] == "torch"
                                                  else "jax"))
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX and PyTorch share the GPU
    command = [sys.executable, os.path.abspath(__file__), "--item", json.dumps(item)]
    command += ["--tiny"] if args.tiny else []
    command += ["--quick"] if args.quick else []
    command += ["--reference", args.reference] if args.reference else []
    start = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        tail = (error.stderr or b"")[-2000:]
        return {"error": f"timed out after {timeout:.0f} s", "log": str(tail)}, timeout
    elapsed = time.perf_counter() - start
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):]), elapsed
    return {"error": f"exit {done.returncode}", "log": done.stderr[-3000:]}, elapsed


ITEM_TIMEOUT = {"check": 150, "conv": 90, "keras": 150, "torch": 120}


def _label(item):
    if item["kind"] in ("check", "conv"):
        return item["kind"]
    w = item["workload"]
    side = f"jax {item['strategy']}" if item["kind"] == "keras" else "torch + reference"
    return (f"{w['variant']} {w['task'][:3]} {w['height']}x{w['width']} b{w['batch']} "
            f"{w['mode']} {item['precision']} {side}")


def format_tables(records):
    lines = []
    for record in records:
        if record["item"]["kind"] == "check" and "rows" in record["result"]:
            lines.append("phase == direct on the device (max difference / max |value|):")
            for r in record["result"]["rows"]:
                lines.append(f"  {r['variant']:<9} {r['precision']:<15} " + " ".join(
                    f"{k} {v:.1e}" for k, v in r.items() if k.startswith(("output", "update")))
                    + ("  ok" if r["ok"] else "  MISMATCH"))
        if record["item"]["kind"] == "conv" and "rows" in record["result"]:
            lines.append(f"3x3 conv fwd+bwd {record['result']['shape']} (ms): dtype dilation "
                         "jax_direct jax_phase torch")
            for r in record["result"]["rows"]:
                lines.append(f"  {r['dtype']:<9} {r['dilation']} {r['jax_direct_ms']:8.2f} "
                             f"{r['jax_phase_ms']:8.2f} {r['torch_ms']:8.2f}")
    rows = {}
    for record in records:
        item, result = record["item"], record["result"]
        if item["kind"] not in ("keras", "torch"):
            continue
        w = item["workload"]
        key = (f"{w['variant']} {w['task'][:3]} {w['height']}x{w['width']} b{w['batch']} "
               f"{w['mode'][:5]}", item["precision"])
        row = rows.setdefault(key, {})
        if "keras_drn" not in result:
            row["jax " + item.get("strategy", "") if item["kind"] == "keras" else "torch"] = None
            continue
        if item["kind"] == "keras":
            row[f"jax {item['strategy']}"] = result["keras_drn"]
        else:
            row["torch backend"] = result["keras_drn"]
            row["reference"] = result.get("reference")
    sides = ("jax direct", "jax phase", "torch backend", "reference")
    header = f"{'workload':<34} {'precision':<15}" + "".join(f"{s:>22}" for s in sides)
    lines += ["", "images/s (ratio to the reference) / peak MB", header]
    for (label, precision), row in rows.items():
        ref = (row.get("reference") or {}).get("images_per_s")
        cells = []
        for side in sides:
            value = row.get(side)
            if not value:
                cells.append(f"{'-':>22}")
                continue
            ratio = f" ({value['images_per_s'] / ref:.2f}x)" if ref else ""
            cells.append(f"{value['images_per_s']:.1f}{ratio} / {value['peak_memory_mb']:.0f}"
                         .rjust(22))
        lines.append(f"{label:<34} {precision:<15}" + "".join(cells))
    return "\n".join(lines)


def drive(args):
    # keras_drn.atomic by its path: importing the package would import Keras (and pick a
    # backend) in this driver, which only starts the item processes.
    write_json = _load("keras_drn_atomic", "keras_drn", "atomic.py").write_json
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gpu_check.json")
    start = time.perf_counter()
    records = []
    for item in plan(args):
        left = args.budget - (time.perf_counter() - start)
        label = _label(item)
        if left < 20:
            records.append({"item": item, "result": {"skipped": "time budget spent"}})
            print(f"skipped (budget): {label}", flush=True)
            continue
        timeout = min(left, ITEM_TIMEOUT[item["kind"]] * (3 if args.tiny else 1))
        print(f"running {label} ...", flush=True)
        result, elapsed = _child(item, args, timeout)
        print(f"  {elapsed:.0f} s" + (f": {result['error']}" if "error" in result else ""),
              flush=True)
        if "error" in result:
            print(result.get("log", "")[-1500:], flush=True)
        records.append({"item": item, "result": result, "seconds": elapsed})
        write_json(path, {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "records": records})
    table = format_tables(records)
    print(table)
    write_json(path, {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "records": records,
                      "table": table})
    check = next((r["result"] for r in records if r["item"]["kind"] == "check"), {})
    failed = [r for r in records if "error" in r["result"]]
    print(f"wrote {path}; phase == direct: {check.get('ok')}; failed items: {len(failed)}")
    return 0 if check.get("ok") and not failed else 1


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"),
                        help="folder for gpu_check.json (default $OUT)")
    parser.add_argument("--budget", type=float, default=450.0,
                        help="seconds for all items (default 450; items past it are skipped)")
    parser.add_argument("--quick", action="store_true",
                        help="short rerun: bfloat16 only, the first two workloads, fewer steps")
    parser.add_argument("--tiny", action="store_true",
                        help="toy sizes and one step: checks the plan on any machine (CPU)")
    default_reference = os.path.join(ROOT, ".gpu", "drn")
    parser.add_argument("--reference", metavar="DIR",
                        default=default_reference if os.path.isdir(default_reference) else None,
                        help="checkout of github.com/fyu/drn (default .gpu/drn if present; "
                             "else the tests' stand-in)")
    parser.add_argument("--item", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.item:
        result = run_item(json.loads(args.item), args)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
