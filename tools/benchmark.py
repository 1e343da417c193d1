"""Inference and training throughput and peak memory of a keras_drn model, optionally next to
the reference PyTorch code (github fyu/drn) running the same workload in the same process.

    python tools/benchmark.py --backend tensorflow --suite cpu --reference ~/drn
    python tools/benchmark.py --backend jax --suite gpu --reference ~/drn --json gpu.json
    python tools/benchmark.py --variant drn_d_22 --task segmentation --size 512x1024 \\
        --batch 1 --mode inference --precision mixed_bfloat16 --jit on

A workload is a variant, a task (``classification``: the ImageNet classifier, 1000 classes;
``segmentation``: ``DRNSegmenter(head="drn")``, the reference's DRNSeg, 19 classes), an input
size, a batch and a mode (``inference``: ``predict_on_batch`` / ``torch.no_grad`` forward;
``training``: one SGD step, momentum 0.9, weight decay 1e-4, with the cross-entropy loss,
``train_on_batch`` / forward + backward + step; the Keras side's optimizer is the training
recipe's ``keras_drn.workflows.training.reference_optimizer``, the reference's ``torch.optim.SGD``
update rule). Both sides get the same random inputs, already on the device, and
both hand their result back to the host (Keras returns numpy arrays; the reference's output
is copied with ``.cpu()`` and its loss read with ``.item()``), so each timed step ends when
the device is done. ``--precision`` sets the Keras dtype policy and the reference's
``torch.autocast`` (bfloat16, or float16 with a ``GradScaler``); on CUDA the reference runs
channels_last with ``cudnn.benchmark`` as in the issue's baselines.

Timing: after ``--warmup`` untimed steps per side (compilation happens there), ``--rounds``
rounds alternate Keras and reference, ``--steps`` steps each; the images/s of a side is the
median over rounds, and the ratio is Keras / reference. Alternating rounds keeps the ratio
honest on a noisy machine: a slow spell hits both sides. ``--batch-norm-baseline`` adds a third
side, the same Keras model traced on Keras's own BatchNormalization path instead of
TensorFlow's fused kernel (``keras_drn.layers.fused_batch_norm``), and prints keras_drn /
that side as "vs Keras BN". ``--sgd-baseline`` (training only) adds the same model whose
optimizer updates take Keras's element-wise ops instead of TensorFlow's fused momentum op
(``keras_drn.workflows.training.elementwise_sgd``) and prints keras_drn / that side as "vs element-wise
SGD". ``--fold-batch-norm`` (inference only) adds the same model with
BatchNormalization folded into the convolutions (``keras_drn.fold_batch_norm``) as a side and
prints folded / keras_drn throughput as "folded"; its peak memory includes the unfolded model
it is made from.

Peak memory: on a GPU, the framework allocator's peak (``torch.cuda.max_memory_allocated``,
JAX ``memory_stats()["peak_bytes_in_use"]``, TensorFlow ``get_memory_info``); on the CPU, the
growth of the process's resident memory from just before the side builds its model (after
garbage collection and ``malloc_trim``) to the highest value sampled every 2 ms while it
builds, compiles and runs its warm-up steps: an approximation, since allocators keep some
freed memory that a later side may reuse.

The reference is imported from ``--reference DIR`` (``drn.py``; its ``segment.py`` does not
import on Python >= 3.7, where ``.cuda(async=True)`` is a syntax error, nor without
torchvision, which has no build for this CPU PyTorch, so when it cannot be imported
``DRNSeg`` is assembled exactly as ``segment.py`` builds it: the backbone without avgpool and
fc, a 1x1 ``seg`` conv, the fixed bilinear ``ConvTranspose2d(16, stride 8, padding 4)``,
``LogSoftmax``). Nothing of the reference is part of keras_drn.
"""

import argparse
import dataclasses
import importlib
import json
import math
import os
import platform
import statistics
import sys
import threading
import time

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
TASKS = ("classification", "segmentation")
MODES = ("inference", "training")
JIT = {"auto": "auto", "on": True, "off": False}


@dataclasses.dataclass(frozen=True)
class Workload:
    variant: str
    task: str
    height: int
    width: int
    batch: int
    mode: str

    @property
    def label(self):
        return (f"{self.variant} {self.task[:3]} {self.height}x{self.width} b{self.batch} "
                f"{self.mode}")


# The baselines (reference code: one H100 with PyTorch 2.11, and a 2-core CPU).
SUITES = {
    "cpu": (
        Workload("drn_c_26", "classification", 224, 224, 8, "inference"),
        Workload("drn_d_22", "classification", 224, 224, 8, "inference"),
        Workload("drn_d_22", "segmentation", 512, 1024, 1, "inference"),
        Workload("drn_d_22", "segmentation", 128, 128, 4, "training"),
        Workload("drn_d_22", "segmentation", 256, 256, 4, "training"),
    ),
    "gpu": (
        Workload("drn_c_26", "classification", 224, 224, 64, "training"),
        Workload("drn_d_22", "segmentation", 896, 896, 8, "training"),
        Workload("drn_d_105", "segmentation", 896, 896, 4, "training"),
        Workload("drn_d_22", "segmentation", 1024, 2048, 1, "inference"),
        Workload("drn_d_105", "segmentation", 1024, 2048, 1, "inference"),
    ),
    # A few seconds on any machine: checks that the tool and the reference import run.
    "smoke": (
        Workload("drn_d_22", "classification", 224, 224, 1, "inference"),
        Workload("drn_d_22", "segmentation", 64, 64, 1, "training"),
    ),
}
NUM_CLASSES = {"classification": 1000, "segmentation": 19}


def parse_size(text):
    """``"224"`` -> (224, 224); ``"512x1024"`` -> (512, 1024)."""
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 8:
        raise argparse.ArgumentTypeError(
            f"size must be N or HxW with sides >= 8 (e.g. 224 or 512x1024); received {text!r}.")
    return (sizes[0], sizes[-1])


class MemorySampler:
    """Highest resident set size of this process while active, sampled every 2 ms."""

    def __init__(self):
        self.peak = self.start = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self):
        return self.peak - self.start


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_memory():
    """Frees what earlier workloads left (Keras graphs, collected objects, glibc's free
    heap pages), so the next side's resident-memory growth starts from a clean slate."""
    import ctypes
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# ---------------------------------------------------------------- keras_drn


class KerasSide:
    name = "keras_drn"

    def __init__(self, workload, precision, jit, seed=0, dilation_strategy="auto"):
        import keras
        import numpy as np

        import keras_drn
        from keras_drn.workflows.training import reference_optimizer

        self.keras = keras
        keras.mixed_precision.set_dtype_policy(precision)
        keras.utils.set_random_seed(seed)
        w = workload
        classes = NUM_CLASSES[w.task]
        if w.task == "classification":
            self.model = keras_drn.get_model(w.variant, classes=classes,
                                             classifier_activation=None,
                                             dilation_strategy=dilation_strategy)
            labels = np.random.default_rng(seed).integers(0, classes, (w.batch,))
        else:
            self.model = keras_drn.DRNSegmenter(w.variant, num_classes=classes, head="drn",
                                                dilation_strategy=dilation_strategy)
            labels = np.random.default_rng(seed).integers(0, classes, (w.batch, w.height, w.width))
        self.model = self.convert(self.model)
        images = np.random.default_rng(seed).random((w.batch, w.height, w.width, 3), "float32")
        self.x = keras.ops.convert_to_tensor(images)
        self.y = keras.ops.convert_to_tensor(labels.astype("int32"))
        self.model.compile(
            optimizer=reference_optimizer(0.01, momentum=0.9, weight_decay=1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
            jit_compile=jit,
        )
        self.mode = w.mode
        keras.mixed_precision.set_dtype_policy("float32")

    def convert(self, model):
        """The model this side times, made from the one built (here: that one)."""
        return model

    def step(self):
        if self.mode == "inference":
            self.model.predict_on_batch(self.x)
        else:
            self.model.train_on_batch(self.x, self.y)

    def reset_peak(self):
        backend = self.keras.backend.backend()
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_logical_devices("GPU"):
                tf.config.experimental.reset_memory_stats("GPU:0")

    def device_peak(self):
        """Allocator peak in bytes on a GPU; None on the CPU."""
        backend = self.keras.backend.backend()
        if backend == "torch":
            import torch

            return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            return (device.memory_stats() or {}).get("peak_bytes_in_use")
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"]


def keras_device():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.devices()[0].device_kind
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "cpu"


# ---------------------------------------------------------------- the reference


def import_reference(directory):
    """The reference's ``drn`` module (and ``segment`` when it imports) from a checkout."""
    path = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isfile(os.path.join(path, "drn.py")):
        raise SystemExit(f"--reference {directory}: no drn.py there; pass a checkout of "
                         "github.com/fyu/drn.")
    sys.path.insert(0, path)
    try:
        drn = importlib.import_module("drn")
        try:
            segment = importlib.import_module("segment")
        except (ImportError, SyntaxError):  # see the module docstring: assemble DRNSeg
            segment = None
    finally:
        sys.path.remove(path)
    return drn, segment


def _reference_segmenter(drn, segment, variant, classes):
    import torch
    from torch import nn

    if segment is not None:
        return segment.DRNSeg(variant, classes, pretrained=False)

    class DRNSeg(nn.Module):  # segment.py's DRNSeg, module for module
        def __init__(self):
            super().__init__()
            model = drn.__dict__[variant](pretrained=False, num_classes=1000)
            self.base = nn.Sequential(*list(model.children())[:-2])
            self.seg = nn.Conv2d(model.out_dim, classes, kernel_size=1, bias=True)
            self.softmax = nn.LogSoftmax(dim=1)
            self.up = nn.ConvTranspose2d(classes, classes, 16, stride=8, padding=4,
                                         output_padding=0, groups=classes, bias=False)
            self.up.weight.requires_grad = False
            with torch.no_grad():  # bilinear kernel, as fill_up_weights
                f = math.ceil(16 / 2)
                c = (2 * f - 1 - f % 2) / (2.0 * f)
                grid = 1 - torch.abs(torch.arange(16) / f - c)
                self.up.weight.copy_((grid[:, None] * grid[None, :]).expand_as(self.up.weight))

        def forward(self, x):
            x = self.seg(self.base(x))
            return self.softmax(self.up(x)), x

    return DRNSeg()


class ReferenceSide:
    name = "reference"

    def __init__(self, reference, workload, precision, seed=0, channels_last=None):
        import numpy as np
        import torch

        drn, segment = reference
        self.torch = torch
        torch.manual_seed(seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if channels_last is None:
            channels_last = self.device.type == "cuda"
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        w = workload
        classes = NUM_CLASSES[w.task]
        if w.task == "classification":
            model = drn.__dict__[w.variant](pretrained=False, num_classes=classes)
            labels = np.random.default_rng(seed).integers(0, classes, (w.batch,))
            self.loss_fn = torch.nn.CrossEntropyLoss()
        else:
            model = _reference_segmenter(drn, segment, w.variant, classes)
            labels = np.random.default_rng(seed).integers(0, classes, (w.batch, w.height, w.width))
            self.loss_fn = torch.nn.NLLLoss(ignore_index=255)
        images = np.random.default_rng(seed).random((w.batch, w.height, w.width, 3), "float32")
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory_format)
        self.x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(
            self.device, memory_format=memory_format)
        self.y = torch.from_numpy(labels).long().to(self.device)
        self.autocast_dtype = {"mixed_bfloat16": torch.bfloat16,
                               "mixed_float16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=precision == "mixed_float16")
        self.optimizer = torch.optim.SGD(self.model.parameters(), 0.01, momentum=0.9,
                                         weight_decay=1e-4)
        self.mode = w.mode
        self.model.train(self.mode == "training")

    def _forward(self):
        out = self.model(self.x)
        return out[0] if isinstance(out, tuple) else out

    def step(self):
        torch = self.torch
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            if self.mode == "inference":
                with torch.no_grad():
                    self._forward().cpu()
                return
            loss = self.loss_fn(self._forward().float(), self.y)
        self.optimizer.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        loss.item()

    def reset_peak(self):
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats()

    def device_peak(self):
        return self.torch.cuda.max_memory_allocated() if self.device.type == "cuda" else None


# ---------------------------------------------------------------- running


def _prepare(factory, warmup):
    """Builds a side and runs its warm-up steps; returns (side, peak memory bytes, seconds
    spent building and compiling)."""
    _release_memory()
    start = time.perf_counter()
    with MemorySampler() as sampler:
        side = factory()
        side.reset_peak()
        for _ in range(warmup):
            side.step()
    peak = side.device_peak()
    return side, (sampler.growth if peak is None else peak), time.perf_counter() - start


class KerasBatchNormSide(KerasSide):
    """The same model traced with Keras's own BatchNormalization path (``keras_batch_norm``):
    the baseline of ``--batch-norm-baseline`` (a trace, so warm-up runs inside it too)."""

    name = "keras_batch_norm"


class KerasFoldedSide(KerasSide):
    """The same model with BatchNormalization folded into the convolutions
    (``keras_drn.fold_batch_norm``): the side of ``--fold-batch-norm``, inference only."""

    name = "keras_folded"

    def convert(self, model):
        import keras_drn

        return keras_drn.fold_batch_norm(model)


class KerasElementwiseSGDSide(KerasSide):
    """The same model trained with Keras's element-wise optimizer updates
    (``elementwise_sgd``): the baseline of ``--sgd-baseline`` (a trace, so warm-up runs inside
    it too)."""

    name = "keras_elementwise_sgd"


def _prepare_in(context, side_class, workload, precision, jit, dilation_strategy, warmup):
    """``_prepare`` of a Keras side whose steps are traced inside ``context``."""
    with context():
        return _prepare(lambda: side_class(workload, precision, jit,
                                           dilation_strategy=dilation_strategy), warmup)


def run_workload(workload, precision, jit, reference=None, warmup=2, steps=5, rounds=3,
                 channels_last=None, dilation_strategy="auto", batch_norm_baseline=False,
                 fold_batch_norm=False, sgd_baseline=False):
    """Measures one workload; returns a dict of results (images/s are medians of rounds)."""
    if fold_batch_norm and workload.mode != "inference":
        raise ValueError(f"fold_batch_norm times inference only; received {workload.label}.")
    if sgd_baseline and workload.mode != "training":
        raise ValueError(f"sgd_baseline times training only; received {workload.label}.")
    from keras_drn.layers.fused_batch_norm import keras_batch_norm
    from keras_drn.workflows.training import elementwise_sgd

    sides = [_prepare(lambda: KerasSide(workload, precision, jit,
                                        dilation_strategy=dilation_strategy), warmup)]
    if batch_norm_baseline:
        sides.append(_prepare_in(keras_batch_norm, KerasBatchNormSide, workload, precision,
                                 jit, dilation_strategy, warmup))
    if sgd_baseline:
        sides.append(_prepare_in(elementwise_sgd, KerasElementwiseSGDSide, workload, precision,
                                 jit, dilation_strategy, warmup))
    if fold_batch_norm:
        sides.append(_prepare(lambda: KerasFoldedSide(workload, precision, jit,
                                                      dilation_strategy=dilation_strategy),
                              warmup))
    if reference is not None:
        sides.append(_prepare(
            lambda: ReferenceSide(reference, workload, precision, channels_last=channels_last),
            warmup))
    rates = [[] for _ in sides]
    for _ in range(rounds):
        for index, (side, _, _) in enumerate(sides):
            start = time.perf_counter()
            for _ in range(steps):
                side.step()
            rates[index].append(steps * workload.batch / (time.perf_counter() - start))
    result = dataclasses.asdict(workload)
    result.update(precision=precision, jit=jit, dilation_strategy=dilation_strategy)
    for (side, peak, setup), side_rates in zip(sides, rates):
        result[side.name] = {
            "images_per_s": statistics.median(side_rates),
            "rounds": side_rates,
            "peak_memory_mb": peak / 2**20,
            "setup_s": setup,
        }
    if reference is not None:
        result["ratio"] = (result["keras_drn"]["images_per_s"]
                           / result["reference"]["images_per_s"])
    if batch_norm_baseline:
        result["fused_batch_norm_ratio"] = (result["keras_drn"]["images_per_s"]
                                            / result["keras_batch_norm"]["images_per_s"])
    if sgd_baseline:
        result["fused_sgd_ratio"] = (result["keras_drn"]["images_per_s"]
                                     / result["keras_elementwise_sgd"]["images_per_s"])
    if fold_batch_norm:
        result["fold_batch_norm_ratio"] = (result["keras_folded"]["images_per_s"]
                                           / result["keras_drn"]["images_per_s"])
    return result


def environment(reference=False):
    import keras
    import numpy

    info = {
        "date": time.strftime("%Y-%m-%d"),
        "backend": keras.backend.backend(),
        "device": keras_device(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }
    for module in (keras.backend.backend(), "torch" if reference else None):
        if module:
            info[module] = importlib.import_module(module).__version__
    return info


def format_table(results):
    lines = [f"{'workload':<40} {'precision':<15} {'jit':<5} {'keras_drn img/s':>15} "
             f"{'ref img/s':>10} {'ratio':>6} {'peak MB':>9} {'ref MB':>8}"]
    for r in results:
        ours, ref = r["keras_drn"], r.get("reference")
        workload = Workload(*(r[f.name] for f in dataclasses.fields(Workload)))
        lines.append(
            f"{workload.label:<40} {r['precision']:<15} {str(r['jit']):<5} "
            f"{ours['images_per_s']:>15.2f} "
            + (f"{ref['images_per_s']:>10.2f} {r['ratio']:>5.2f}x " if ref else f"{'-':>10} "
               f"{'-':>6} ")
            + f"{ours['peak_memory_mb']:>9.0f} "
            + (f"{ref['peak_memory_mb']:>8.0f}" if ref else f"{'-':>8}")
            + (f"  vs Keras BN {r['fused_batch_norm_ratio']:.2f}x"
               if "fused_batch_norm_ratio" in r else "")
            + (f"  vs element-wise SGD {r['fused_sgd_ratio']:.2f}x"
               if "fused_sgd_ratio" in r else "")
            + (f"  folded {r['fold_batch_norm_ratio']:.2f}x"
               if "fold_batch_norm_ratio" in r else "")
        )
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="Keras backend (default: KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--suite", choices=sorted(SUITES),
                        help="the issue's workloads instead of one given by the options below")
    parser.add_argument("--variant", default="drn_c_26", help="keras-drn models (default "
                        "drn_c_26)")
    parser.add_argument("--task", choices=TASKS, default="classification")
    parser.add_argument("--size", type=parse_size, default=(224, 224), help="N or HxW")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--mode", choices=MODES + ("both",), default="inference")
    parser.add_argument("--precision", choices=PRECISIONS, nargs="+", default=["float32"])
    parser.add_argument("--jit", choices=sorted(JIT), nargs="+", default=["auto"],
                        help="Keras jit_compile (on TensorFlow: XLA; torch: torch.compile)")
    parser.add_argument("--dilation-strategy", choices=("auto", "direct", "phase"),
                        default="auto", help="how keras_drn runs the dilated levels")
    parser.add_argument("--reference", metavar="DIR",
                        help="checkout of github.com/fyu/drn: also run the reference")
    parser.add_argument("--reference-layout", choices=("auto", "channels_first",
                        "channels_last"), default="auto",
                        help="reference memory format (auto: channels_last on CUDA only)")
    parser.add_argument("--batch-norm-baseline", action="store_true",
                        help="also time the model on Keras's BatchNormalization path (the "
                        "fused kernel off) in the same rounds")
    parser.add_argument("--sgd-baseline", action="store_true",
                        help="also time training with Keras's element-wise optimizer updates "
                        "(TensorFlow's fused momentum op off) in the same rounds; training only")
    parser.add_argument("--fold-batch-norm", action="store_true",
                        help="also time the model with BatchNormalization folded into the "
                        "convolutions (keras_drn.fold_batch_norm) in the same rounds; "
                        "inference only")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    parser.add_argument("--output", metavar="FILE", help="also write the table as a "
                        "docs/benchmarks record (tools/benchmark_record.py; "
                        "tools/speed_page.py renders it)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise SystemExit("--backend must be chosen before keras is imported.")
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras_drn

    if args.suite:
        workloads = SUITES[args.suite]
    else:
        if args.variant.lower().replace("-", "_") not in keras_drn.list_models():
            raise SystemExit(f"unknown variant {args.variant!r}; choose from "
                             f"{', '.join(keras_drn.list_models())}.")
        modes = MODES if args.mode == "both" else (args.mode,)
        workloads = [Workload(args.variant.lower().replace("-", "_"), args.task, *args.size,
                              args.batch, mode) for mode in modes]
    training = [w.label for w in workloads if w.mode != "inference"]
    if args.fold_batch_norm and training:
        raise SystemExit("--fold-batch-norm times inference only (a folded model has no "
                         "BatchNormalization to train); received training workloads: "
                         f"{', '.join(training)}. Use --mode inference and no suite.")
    inference = [w.label for w in workloads if w.mode != "training"]
    if args.sgd_baseline and inference:
        raise SystemExit("--sgd-baseline times training only; received inference workloads: "
                         f"{', '.join(inference)}. Use --mode training.")
    reference = import_reference(args.reference) if args.reference else None
    for workload in workloads:
        if reference and workload.task == "classification" and (workload.height,
                                                                 workload.width) != (224, 224):
            raise SystemExit("The reference classifier pools with AvgPool2d(28), which fits "
                             "224x224 inputs only: use --size 224 with --reference.")
    channels_last = {"auto": None, "channels_first": False,
                     "channels_last": True}[args.reference_layout]
    results = []
    for workload in workloads:
        for precision in args.precision:
            for jit in args.jit:
                print(f"running {workload.label} {precision} jit={jit} ...", flush=True)
                results.append(run_workload(workload, precision, JIT[jit], reference,
                                            args.warmup, args.steps, args.rounds,
                                            channels_last, args.dilation_strategy,
                                            args.batch_norm_baseline, args.fold_batch_norm,
                                            args.sgd_baseline))
    info = environment(reference is not None)
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    print(format_table(results))
    if args.json:
        from keras_drn.atomic import write_atomically

        write_atomically(args.json, lambda path: _dump(path, info, results))
    if args.output:
        write_record(args.output, results, args.steps, args.rounds)
    return 0


# Optional ratio columns: result key -> column name (as format_table prints them).
BASELINES = {"fused_batch_norm_ratio": "vs Keras BN", "fused_sgd_ratio": "vs element-wise SGD",
             "fold_batch_norm_ratio": "folded"}


def record_table(results):
    """(columns, rows) of ``results`` in the docs/benchmarks format."""
    extra = [key for key in BASELINES if any(key in r for r in results)]
    columns = [{"name": "workload", "align": "left"}, {"name": "precision", "align": "left"},
               {"name": "jit", "align": "left"},
               {"name": "keras_drn img/s", "align": "right", "format": "{:.2f}"},
               {"name": "reference img/s", "align": "right", "format": "{:.2f}"},
               {"name": "ratio", "align": "right", "format": "{:.2f}x"},
               {"name": "keras_drn peak MB", "align": "right", "format": "{:.0f}"},
               *({"name": BASELINES[key], "align": "right", "format": "{:.2f}x"}
                 for key in extra)]
    rows = []
    for r in results:
        workload = Workload(*(r[f.name] for f in dataclasses.fields(Workload)))
        ref = r.get("reference")
        rows.append([workload.label, r["precision"], str(r["jit"]),
                     r["keras_drn"]["images_per_s"], ref["images_per_s"] if ref else None,
                     r.get("ratio") if ref else None, r["keras_drn"]["peak_memory_mb"],
                     *(r.get(key) for key in extra)])
    return columns, rows


def write_record(path, results, steps, rounds):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchmark_record

    columns, rows = record_table(results)
    benchmark_record.write(path, benchmark_record.record(
        f"{os.environ['KERAS_BACKEND']} backend" + (
            " vs the reference" if any(r.get("reference") for r in results) else ""),
        f"Median over {rounds} alternating rounds of {steps} steps; the ratio is keras_drn / "
        "reference; extra ratio columns compare keras_drn with the baseline named.",
        columns, rows))


def _dump(path, info, results):
    with open(path, "w") as f:
        json.dump({"environment": info, "results": results}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
