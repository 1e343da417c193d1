"""CPU latency and file size of every export format and quantisation of a DRN model, next to
the float32 Keras model measured in the same run.

    python tools/benchmark_export.py                      # DRN-D-22 segmenter, 19 classes, 256x256
    python tools/benchmark_export.py --task classifier --size 224 --runs 20
    python tools/benchmark_export.py --only litert:int8 --only onnx:none
    python tools/benchmark_export.py --fold-batch-norm --only litert:none --only onnx:none

Each artifact is written by ``keras_drn.export`` (so it is verified against Keras first: the
"check" column) with a static ``--size`` x ``--size`` input, then timed on one image (batch 1)
with its own runtime: ``tf.saved_model.load(...).serve``, the ai-edge-litert interpreter,
onnxruntime; Keras is timed with ``model.predict_on_batch``. Latency is the median of
``--runs`` runs after two warm-up runs, all runtimes on ``--threads`` CPU threads. Ratios are
to float32 Keras (its ``.keras`` file for the size). Weights are random: latency and size do
not depend on them, agreement of quantised models with Keras does a little. The model carries
its normalisation (a ``preprocessing`` layer with ImageNet's statistics, as a deployed model
does): every runtime takes raw 0-255 RGB and times the normalisation too.
``--fold-batch-norm`` also measures the model with BatchNormalization folded into the
convolutions (``keras_drn.fold_batch_norm``) in Keras and in each format, a "BN folded" row
after each unfolded one (LiteRT's converter and ONNX Runtime's optimiser may fold some
BatchNormalization on their own: the rows show what is left to gain).
"""

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time

import keras
import numpy as np

import keras_drn
from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.export import FORMATS, QUANTIZATIONS, export
from keras_drn.models.preprocessing import with_preprocessing

COMBINATIONS = (
    ("tf_saved_model", None),
    ("litert", None),
    ("litert", "float16"),
    ("litert", "dynamic_int8"),
    ("litert", "int8"),
    ("onnx", None),
    ("onnx", "float16"),
    ("onnx", "dynamic_int8"),
    ("onnx", "int8"),
)
SUFFIXES = {"tf_saved_model": "", "litert": ".tflite", "onnx": ".onnx"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="drn_d_22", help="DRN variant (default drn_d_22)")
    parser.add_argument("--task", default="segmenter", choices=["segmenter", "classifier"])
    parser.add_argument("--classes", type=int, default=19, help="classes (default 19)")
    parser.add_argument("--size", type=int, default=256, help="input height and width")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per model")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads")
    parser.add_argument("--only", action="append", metavar="FORMAT:QUANTIZE",
                        help="benchmark only these (repeatable), e.g. litert:int8, onnx:none")
    parser.add_argument("--workdir", help="where to keep the artifacts (default: a temporary "
                        "folder, deleted after)")
    parser.add_argument("--fold-batch-norm", action="store_true",
                        help="also measure the model with BatchNormalization folded into the "
                        "convolutions (keras_drn.fold_batch_norm), in Keras and every format")
    parser.add_argument("--output", metavar="FILE", help="also write the table as a "
                        "docs/benchmarks record (tools/benchmark_record.py)")
    return parser.parse_args(argv)


def selected(only):
    if not only:
        return list(COMBINATIONS)
    chosen = []
    for item in only:
        fmt, _, quantize = item.partition(":")
        quantize = None if quantize in ("", "none") else quantize
        if fmt not in FORMATS or quantize not in QUANTIZATIONS:
            raise SystemExit(f"--only {item!r}: expected FORMAT:QUANTIZE with FORMAT in "
                             f"{FORMATS} and QUANTIZE in none/float16/dynamic_int8/int8.")
        chosen.append((fmt, quantize))
    return chosen


def median_ms(run, runs):
    for _ in range(2):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def runner(fmt, path, x, threads):
    """A no-argument function running the artifact once on ``x``, and what keeps it alive."""
    if fmt == "tf_saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        tensor = tf.constant(x)
        return lambda: loaded.serve(tensor).numpy(), loaded
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]["index"]
        target = interpreter.get_output_details()[0]["index"]

        def run():
            interpreter.set_tensor(source, x)
            interpreter.invoke()
            return interpreter.get_tensor(target)

        return run, interpreter
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: x}), session


def size_on_disk(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def check_text(report):
    if report.max_rel_diff is not None and report.quantize in (None, "float16"):
        return f"max rel. diff {report.max_rel_diff:.1e}"
    text = f"agreement {100 * report.agreement:.1f}%"
    return text + (f", mIoU {report.miou:.3f}" if report.miou is not None else "")


def main(argv=None):
    args = parse_args(argv)
    combinations = selected(args.only)
    keras.utils.set_random_seed(0)
    if args.task == "segmenter":
        model = keras_drn.DRNSegmenter(args.variant, num_classes=args.classes,
                                       include_preprocessing=True)
    else:
        model = with_preprocessing(keras_drn.get_model(args.variant, classes=args.classes),
                                   IMAGENET_MEAN, IMAGENET_STD)
    # (row label suffix, file name suffix, model)
    variants = [("", "", model)]
    if args.fold_batch_norm:
        variants.append((" BN folded", "_folded", keras_drn.fold_batch_norm(model)))
    workdir = args.workdir or tempfile.mkdtemp(prefix="drn_benchmark_")
    os.makedirs(workdir, exist_ok=True)
    try:
        x = np.random.default_rng(0).uniform(0, 255, size=(1, args.size, args.size, 3))
        x = x.astype("float32")  # raw RGB: the model normalises inside
        rows, expected = [], model.predict_on_batch(x)
        for label, suffix, variant in variants:
            keras_file = os.path.join(workdir, f"model{suffix}.keras")
            variant.save(keras_file)
            difference = np.abs(variant.predict_on_batch(x) - expected).max()
            check = (f"max rel. diff {difference / np.abs(expected).max():.1e}" if suffix
                     else "reference")
            rows.append((f"Keras ({keras.backend.backend()}){label}", "float32",
                         os.path.getsize(keras_file),
                         median_ms(functools.partial(variant.predict_on_batch, x), args.runs),
                         check))
        keras_bytes, keras_ms = rows[0][2], rows[0][3]
        for fmt, quantize in combinations:
            for label, suffix, variant in variants:
                path = os.path.join(workdir,
                                    f"{fmt}_{quantize or 'float32'}{suffix}{SUFFIXES[fmt]}")
                report = export(variant, path, format=fmt, input_shape=(args.size, args.size),
                                quantize=quantize,
                                representative_data="embedded" if quantize == "int8" else None,
                                overwrite=True, verbose=False)
                run, _keep = runner(fmt, path, x, args.threads)
                rows.append((fmt + label, quantize or "float32", size_on_disk(path),
                             median_ms(run, args.runs), check_text(report)))
                print(f"measured {fmt}{label} {quantize or 'float32'}", file=sys.stderr,
                      flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{model.name}, input 1x{args.size}x{args.size}x3, {args.threads} CPU threads, "
          f"median of {args.runs} runs; ratios to float32 Keras\n")
    print("| format | precision | file (MiB) | size vs Keras | latency (ms) | latency vs Keras "
          "| check against Keras |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for name, precision, size, ms, check in rows:
        print(f"| {name} | {precision} | {size / 2**20:.1f} | {size / keras_bytes:.2f}x | "
              f"{ms:.1f} | {ms / keras_ms:.2f}x | {check} |")
    if args.output:
        write_record(args.output, rows, f"{model.name}, input 1x{args.size}x{args.size}x3, "
                     f"{args.threads} CPU threads, median of {args.runs} runs, "
                     f"{keras.backend.backend()} backend; ratios to float32 Keras.")
    return 0


COLUMNS = [{"name": "format", "align": "left"}, {"name": "precision", "align": "left"},
           {"name": "file (MiB)", "align": "right", "format": "{:.1f}"},
           {"name": "size vs Keras", "align": "right", "format": "{:.2f}x"},
           {"name": "latency (ms)", "align": "right", "format": "{:.1f}"},
           {"name": "latency vs Keras", "align": "right", "format": "{:.2f}x"},
           {"name": "check against Keras", "align": "left"}]


def record_rows(rows):
    """The printed table's rows (the first is float32 Keras) as docs/benchmarks rows."""
    keras_bytes, keras_ms = rows[0][2], rows[0][3]
    return [[name, precision, size / 2**20, size / keras_bytes, ms, ms / keras_ms, check]
            for name, precision, size, ms, check in rows]


def write_record(path, rows, description):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchmark_record

    benchmark_record.write(path, benchmark_record.record(
        "Export formats: file size and CPU latency", description, COLUMNS, record_rows(rows)))


if __name__ == "__main__":
    sys.exit(main())
