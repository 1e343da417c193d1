"""Deployment exports that are checked against Keras: TensorFlow SavedModel, LiteRT (float32,
float16, dynamic-range int8, full int8) and ONNX, for DRN classifiers and segmenters.

``export(model, path, format=...)`` writes the artifact into a staging folder beside ``path``,
loads it back with its own runtime (``tf.saved_model.load``, the LiteRT interpreter of
``ai-edge-litert``, ``onnxruntime``), runs it on scenes of the embedded dataset
(``keras_drn.data.make_scenes``) and compares it with the Keras model; only an export that
passes is moved to ``path``. Anything that fails leaves no file behind.

The graphs are written by Keras's own ``model.export`` under the TensorFlow backend (SavedModel
and LiteRT through an ``ExportArchive``, ONNX through tf2onnx); ONNX quantisation is
onnxruntime's. A model built under JAX or PyTorch is saved to a temporary ``.keras`` file and
exported by a ``KERAS_BACKEND=tensorflow`` subprocess, then verified against the original
model in the calling process: the artifacts are the same whichever backend trained the model.

Mobile graphs: LiteRT models are converted with builtin ops only (no Flex ops, no
SELECT_TF_OPS) and a static batch of 1 with a static height and width. keras_drn's models
write each dilated convolution as one dilated Conv2D (``keras_drn.layers.DilatedConv2D``); a
plain ``keras.layers.Conv2D`` lowers it to SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND,
which the converter folds back into one dilated CONV_2D only when every shape is static
(keras issue 17450): the static shape keeps such layers in custom heads mobile-friendly too.
"""

import argparse
import collections
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
from keras import layers, ops

from keras_drn.data.synthetic import make_scenes

FORMATS = ("tf_saved_model", "litert", "onnx")
QUANTIZATIONS = (None, "float16", "dynamic_int8", "int8")
FORMAT_QUANTIZATIONS = {"tf_saved_model": (None,), "litert": QUANTIZATIONS, "onnx": QUANTIZATIONS}
SUFFIXES = {"litert": ".tflite", "onnx": ".onnx"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Largest |artifact - Keras| allowed, relative to max(1, max |Keras output|).
TOLERANCES = {None: 1e-4, "float16": 1e-2}
# Sizes checked when height and width stay dynamic (one even, one odd: the crop paths).
VERIFY_SIZES = ((64, 96), (75, 57))
FLOAT_SAMPLES = 2  # embedded scenes per size for a float comparison
AGREEMENT_SAMPLES = 16  # embedded scenes for agreement (quantised or class-id exports)
CALIBRATION_SAMPLES = 32  # embedded scenes for representative_data="embedded"
NON_MOBILE_OPS = ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
DILATED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "Conv", "ConvInteger")
# SavedModel graph plumbing left out of its op histogram.
PLUMBING_OPS = frozenset((
    "Const", "Identity", "IdentityN", "NoOp", "Placeholder", "ReadVariableOp", "VarHandleOp",
    "StatefulPartitionedCall", "PartitionedCall", "StopGradient",
))


class ExportVerificationError(RuntimeError):
    """The exported artifact does not match the Keras model; ``report`` holds the numbers."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class ExportReport:
    """What was written and how it compares with Keras (returned by ``export``).

    ``checks`` has one entry per verified input size: ``size``, ``samples`` and
    ``max_abs_diff``/``max_rel_diff`` (outputs compared as numbers; relative to
    ``max(1, max |Keras output|)``) or ``agreement`` (class ids compared). ``agreement`` is the
    fraction of pixels (segmenter) or images (classifier, top-1) whose class matches Keras's,
    over all checks, and ``miou`` the mean IoU of the artifact's classes against Keras's.
    ``op_histogram`` counts the graph's ops; ``dilated_convs`` the convolutions that carry a
    dilation (LiteRT, ONNX).
    """

    path: str
    format: str
    quantize: str = None
    task: str = None
    end_to_end: bool = False
    backend: str = None
    route: str = None
    input_shape: tuple = None
    input_dtype: str = None
    output_dtype: str = None
    size_bytes: int = 0
    export_seconds: float = 0.0
    verify_seconds: float = 0.0
    tolerance: float = None
    max_abs_diff: float = None
    max_rel_diff: float = None
    agreement: float = None
    miou: float = None
    checks: list = dataclasses.field(default_factory=list)
    op_histogram: dict = dataclasses.field(default_factory=dict)
    dilated_convs: int = None
    mobile_friendly: bool = None
    passed: bool = False
    failures: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)

    def summary(self):
        """A few lines for people: the file, the comparison with Keras, the op histogram."""
        precision = self.quantize or "float32"
        lines = [
            f"{self.format} ({precision}{', end to end' if self.end_to_end else ''}) -> "
            f"{self.path}: {self.size_bytes / 2**20:.1f} MiB, input {self.input_dtype} "
            f"{_shape_text(self.input_shape)}, output {self.output_dtype}",
            f"  written {self.route} in {self.export_seconds:.1f} s; verified in "
            f"{self.verify_seconds:.1f} s against the Keras model ({self.backend} backend): "
            + ("PASSED" if self.passed else "FAILED"),
        ]
        for check in self.checks:
            size = f"{check['size'][0]}x{check['size'][1]}"
            if "max_abs_diff" in check:
                limit = "" if self.tolerance is None else f", limit {self.tolerance:.0e}"
                lines.append(
                    f"  {size}, {check['samples']} scenes: max |diff| {check['max_abs_diff']:.2e}"
                    f" (relative {check['max_rel_diff']:.2e}{limit})"
                )
            else:
                lines.append(f"  {size}, {check['samples']} scenes: class ids equal Keras's "
                             f"argmax at {100 * check['agreement']:.2f}%")
        if self.agreement is not None:
            unit = "pixels" if self.task == "segmenter" else "images (top-1)"
            text = f"  agreement with Keras on the embedded scenes: {100 * self.agreement:.2f}% "
            text += f"of {unit}"
            if self.miou is not None:
                text += f", mIoU {self.miou:.4f}"
            lines.append(text)
        ops_text = ", ".join(f"{name} {count}" for name, count in
                             sorted(self.op_histogram.items(), key=lambda item: -item[1]))
        lines.append(f"  op histogram ({sum(self.op_histogram.values())} ops): {ops_text}")
        if self.dilated_convs is not None:
            lines.append(f"  dilated convolutions carried by a single conv op: "
                         f"{self.dilated_convs}")
        if self.mobile_friendly is not None:
            lines.append("  mobile-friendly: " + (
                "yes (builtin ops only, no SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND)"
                if self.mobile_friendly else "no (Flex/custom ops or space-to-batch chains)"))
        lines += [f"  failure: {failure}" for failure in self.failures]
        return "\n".join(lines)


@keras.saving.register_keras_serializable(package="keras_drn")
class ClassIds(layers.Layer):
    """Argmax over the last axis, as ``output_dtype``: logits -> class ids.

    Input shape: ``(batch, ..., classes)``. Output shape: ``(batch, ...)``.
    """

    def __init__(self, output_dtype="uint8", **kwargs):
        super().__init__(**kwargs)
        self.output_dtype = output_dtype

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # keras.ops.argmax on TensorFlow ranks -0.0 below +0.0 with a bitcast and a
            # BitwiseAnd, an op LiteRT has no builtin for; tf.math.argmax is one ARG_MAX.
            return ops.cast(tf.math.argmax(inputs, axis=-1), self.output_dtype)
        return ops.cast(ops.argmax(inputs, axis=-1), self.output_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(output_dtype=self.output_dtype)
        return config


@dataclasses.dataclass(frozen=True)
class _Job:
    """What to write: everything the TensorFlow side needs besides the model."""

    format: str
    quantize: str
    batch_shape: tuple  # the artifact's input shape, None where dynamic
    end_to_end: bool
    mean: tuple
    std: tuple
    output_dtype: str  # of class ids (end_to_end), else "float32"

    @property
    def input_dtype(self):
        return "uint8" if self.end_to_end else "float32"

    @property
    def static(self):
        return None not in self.batch_shape[1:3]


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; received {name}={value!r}.")


def _shape_text(shape):
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")" if shape else "?"


def _task(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model; received {type(model).__name__}.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"export takes a model with one image input and one output (a DRN classifier or "
            f"DRNSegmenter); {model.name!r} has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs."
        )
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] is None:
        raise ValueError(f"The model input must be (batch, height, width, channels) with known "
                         f"channels; {model.name!r} takes {in_shape}.")
    if len(out_shape) == 2:
        return "classifier"
    if len(out_shape) == 4:
        return "segmenter"
    raise ValueError(f"The model output must be (batch, classes) (classifier) or (batch, height, "
                     f"width, classes) (segmenter); {model.name!r} outputs {out_shape}.")


def _size(model, fmt, input_shape):
    """The exported (height, width): ``input_shape``, else the model's (None where dynamic)."""
    model_hw = tuple(model.inputs[0].shape[1:3])
    if input_shape is None:
        size = model_hw
    else:
        if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 2
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                           for d in input_shape)):
            raise ValueError("input_shape must be None or (height, width) with positive ints; "
                             f"received input_shape={input_shape!r}.")
        for fixed, wanted in zip(model_hw, input_shape):
            if fixed is not None and fixed != wanted:
                raise ValueError(f"input_shape={tuple(input_shape)} does not match the model's "
                                 f"fixed input size {model_hw}.")
        size = tuple(input_shape)
    if fmt == "litert" and None in size:
        raise ValueError(
            "LiteRT graphs have a static input shape (batch 1): only then is each dilated "
            "convolution one CONV_2D instead of a SPACE_TO_BATCH_ND chain. Pass "
            f"input_shape=(height, width); the model takes any size ({model_hw})."
        )
    return size


def _check_onnx_float16(fmt, quantize, size):
    if fmt == "onnx" and quantize == "float16" and None in size:
        raise ValueError(
            "ONNX float16 needs a static size: onnxruntime's float16 converter also converts "
            "the integer shape arithmetic that tf2onnx writes for dynamic height and width "
            "(through float casts), which breaks it. Pass input_shape=(height, width)."
        )


def _check_normalisation(mean, std, channels):
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ValueError(f"mean and std need {channels} values (std > 0); received mean={mean}, "
                         f"std={std}.")
    return mean, std


def _scenes(count, height, width, seed):
    """``count`` embedded scenes, float32 RGB in [0, 1], cropped to ``height x width``."""
    images, _, _ = make_scenes(count, size=max(height, width, 16), seed=seed)
    return images[:, :height, :width]


def _artifact_inputs(images, job):
    """Scenes in [0, 1] as the artifact takes them: uint8 RGB (end to end) or normalised."""
    if job.end_to_end:
        return np.round(images * 255).astype("uint8")
    return ((images - np.float32(job.mean)) / np.float32(job.std)).astype("float32")


def _keras_inputs(artifact_inputs, job):
    if job.end_to_end:
        return (artifact_inputs.astype("float32") / 255 - np.float32(job.mean)) / np.float32(
            job.std)
    return artifact_inputs


def _calibration(representative_data, job, channels):
    """``representative_data`` as one array of samples in the artifact's input format."""
    if isinstance(representative_data, str):
        if representative_data != "embedded":
            raise ValueError("representative_data must be 'embedded' (the embedded synthetic "
                             "scenes), an array of samples or an iterable of arrays; received "
                             f"{representative_data!r}.")
        height, width = job.batch_shape[1:3] if job.static else VERIFY_SIZES[0]
        return _artifact_inputs(_scenes(CALIBRATION_SAMPLES, height, width, seed=1), job)
    if isinstance(representative_data, np.ndarray) or hasattr(representative_data, "shape"):
        data = np.asarray(representative_data)
    else:
        items = [np.asarray(item) for item in representative_data]
        if not items:
            raise ValueError("representative_data is empty.")
        data = np.concatenate([item if item.ndim == 4 else item[None] for item in items])
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4 or data.shape[-1] != channels or not len(data):
        raise ValueError(f"representative_data must hold samples shaped (height, width, "
                         f"{channels}); received shape {data.shape}.")
    for fixed, got in zip(job.batch_shape[1:3], data.shape[1:3]):
        if fixed is not None and fixed != got:
            raise ValueError(f"representative_data samples are {data.shape[1:3]}; the export "
                             f"takes {tuple(job.batch_shape[1:3])}.")
    if job.end_to_end and data.dtype != np.uint8:
        raise ValueError("With end_to_end=True the artifact takes uint8 RGB: representative_data "
                         f"must be uint8 images; received dtype {data.dtype}.")
    return data.astype(job.input_dtype)


def export(
    model,
    path,
    format="tf_saved_model",
    input_shape=None,
    quantize=None,
    representative_data=None,
    *,
    end_to_end=False,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    min_agreement=None,
    overwrite=False,
    verbose=True,
):
    """Exports a DRN classifier or segmenter for deployment and verifies the file.

    Args:
        model: a Keras model with one image input ``(batch, H, W, C)`` and class logits or
            probabilities out: ``(batch, classes)`` or ``(batch, H, W, classes)``. Any backend.
        path: where to write: a folder (``"tf_saved_model"``), a ``.tflite`` file
            (``"litert"``) or an ``.onnx`` file (``"onnx"``).
        format: ``"tf_saved_model"``, ``"litert"`` or ``"onnx"``.
        input_shape: ``None`` or ``(height, width)``. ``None`` keeps the model's: a SavedModel
            or ONNX file of an any-size model then takes any height and width (and any batch).
            LiteRT needs a static size (batch 1: each dilated convolution is one CONV_2D).
        quantize: ``None`` (float32), ``"float16"`` (float16 weights), ``"dynamic_int8"``
            (int8 weights, float activations) or ``"int8"`` (weights and activations int8,
            float input and output; needs ``representative_data``). LiteRT and ONNX only;
            ONNX float16 needs a static ``input_shape``.
        representative_data: int8 calibration samples as the artifact takes them
            (``(N, H, W, C)`` normalised floats, or uint8 RGB with ``end_to_end``; an iterable
            of arrays works too), or ``"embedded"`` for 32 embedded synthetic scenes.
        end_to_end: bakes preprocessing and argmax into the graph: uint8 RGB in,
            ``(x / 255 - mean) / std`` inside, class ids out (a segmenter's mask is uint8 when
            it has at most 256 classes, else int32; a classifier's top-1 id is int32).
        mean, std: per-channel normalisation the model expects, on the [0, 1] scale (default
            ImageNet's, as the DRN reference); used inside the graph with ``end_to_end`` and
            for the verification scenes either way.
        min_agreement: optional lower bound on the agreement with Keras (0 to 1); quantised
            exports are otherwise checked for shape and finite outputs and their agreement is
            reported.
        overwrite: replace an existing ``path``; otherwise an existing one is refused.
        verbose: print the report.

    Returns:
        An ``ExportReport``: file size, max abs/relative difference to Keras per checked size
        (float32 must be within 1e-4 and float16 within 1e-2 of ``max(1, max |Keras output|)``),
        agreement and mIoU (quantised and class-id exports), op histogram and, for LiteRT,
        whether the graph is mobile-friendly (builtin ops only, no space-to-batch chains).

    Raises:
        ValueError: an unknown format or quantisation (the message lists the choices), int8
            without ``representative_data``, a wrong suffix or shape.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ExportVerificationError: the artifact does not match Keras (nothing is written).
    """
    _choice("format", format, FORMATS)
    _choice("quantize", quantize, QUANTIZATIONS)
    if quantize not in FORMAT_QUANTIZATIONS[format]:
        raise ValueError(f"format={format!r} takes quantize in {FORMAT_QUANTIZATIONS[format]}; "
                         f"received quantize={quantize!r}. Quantised exports: 'litert', 'onnx'.")
    path = os.path.abspath(os.fspath(path))
    suffix = SUFFIXES.get(format)
    if suffix and not path.endswith(suffix):
        raise ValueError(f"A {format} export is a {suffix} file; received path={path!r}.")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "quantize='int8' calibrates activation ranges on representative inputs: pass "
            "representative_data (an array of ~100 inputs shaped (N, H, W, C) as the artifact "
            "takes them) or representative_data='embedded' for the embedded synthetic scenes."
        )
    if representative_data is not None and quantize != "int8":
        raise ValueError(f"representative_data is only used by quantize='int8'; received "
                         f"quantize={quantize!r}.")
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise ValueError(f"min_agreement must be None or in [0, 1]; received {min_agreement!r}.")
    task = _task(model)
    height, width = _size(model, format, input_shape)
    _check_onnx_float16(format, quantize, (height, width))
    channels = model.inputs[0].shape[-1]
    mean, std = _check_normalisation(mean, std, channels)
    classes = model.outputs[0].shape[-1]
    output_dtype = "float32"
    if end_to_end:
        output_dtype = "uint8" if task == "segmenter" and classes and classes <= 256 else "int32"
    job = _Job(format, quantize, (1 if format == "litert" else None, height, width, channels),
               bool(end_to_end), mean, std, output_dtype)
    calibration = None
    if representative_data is not None:
        calibration = _calibration(representative_data, job, channels)

    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".keras_drn_export_", dir=directory)
    try:
        staged = os.path.join(staging, os.path.basename(path))
        start = time.time()
        route = _write_artifact(model, staged, job, calibration, staging)
        report = ExportReport(
            path=path, format=format, quantize=quantize, task=task, end_to_end=job.end_to_end,
            backend=keras.backend.backend(), route=route, input_shape=job.batch_shape,
            input_dtype=job.input_dtype, output_dtype=output_dtype,
            size_bytes=_size_on_disk(staged), export_seconds=time.time() - start,
        )
        report.op_histogram, report.dilated_convs = op_histogram(staged, format)
        if format == "litert":
            report.mobile_friendly = not any(
                name.startswith("CUSTOM") or name in NON_MOBILE_OPS
                for name in report.op_histogram)
        start = time.time()
        _verify(model, staged, job, task, report, min_agreement)
        report.verify_seconds = time.time() - start
        if verbose:
            print(report.summary())
        if report.failures:
            raise ExportVerificationError(
                f"The {format} export does not match the Keras model; nothing was written to "
                f"{path}: " + "; ".join(report.failures), report)
        _install(staged, path, overwrite, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _size_on_disk(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def _install(staged, path, overwrite, staging):
    """Moves the verified artifact into place; an existing one is moved aside first and deleted
    after, so ``path`` never holds a mix of the two."""
    if os.path.lexists(path):
        if not overwrite:
            raise FileExistsError(f"{path} appeared during the export; pass overwrite=True.")
        previous = os.path.join(staging, "previous")
        os.replace(path, previous)
    os.replace(staged, path)


# === Writing (TensorFlow) ===


def _write_artifact(model, staged, job, calibration, staging):
    """Writes the artifact at ``staged``; returns how (for the report)."""
    if keras.backend.backend() == "tensorflow":
        _write_with_tensorflow(model, staged, job, calibration)
        return "in-process (tensorflow backend)"
    _write_in_subprocess(model, staged, job, calibration, staging)
    return "by a KERAS_BACKEND=tensorflow subprocess"


def _write_in_subprocess(model, staged, job, calibration, staging):
    """Saves ``model`` as ``.keras`` and has a TensorFlow-backend Python write the artifact."""
    model_path = os.path.join(staging, "model.keras")
    model.save(model_path)
    spec = {"model": model_path, "artifact": staged, "job": dataclasses.asdict(job),
            "calibration": None}
    if calibration is not None:
        spec["calibration"] = os.path.join(staging, "calibration.npy")
        np.save(spec["calibration"], calibration)
    spec_path = os.path.join(staging, "job.json")
    with open(spec_path, "w") as handle:
        json.dump(spec, handle)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-c",
               "import sys; from keras_drn.export import _worker_main; "
               "sys.exit(_worker_main(sys.argv[1]))", spec_path]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"The TensorFlow export subprocess failed (exit {result.returncode}); its last "
            f"output:\n{(result.stdout + result.stderr)[-4000:]}")


def _worker_main(spec_path):
    """Entry point of the subprocess: loads the ``.keras`` model under TensorFlow and writes."""
    with open(spec_path) as handle:
        spec = json.load(handle)
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("The export worker needs KERAS_BACKEND=tensorflow.")
    fields = spec["job"]
    job = _Job(**{**fields, "batch_shape": tuple(fields["batch_shape"]),
                  "mean": tuple(fields["mean"]), "std": tuple(fields["std"])})
    model = keras.saving.load_model(spec["model"], compile=False)
    calibration = None if spec["calibration"] is None else np.load(spec["calibration"])
    _write_with_tensorflow(model, spec["artifact"], job, calibration)
    return 0


def _serving_model(model, job):
    """The model as exported: itself, or with ``end_to_end`` wrapped in preprocessing (uint8
    RGB -> normalised float32) and argmax (logits -> class ids)."""
    if not job.end_to_end:
        return model
    inputs = keras.Input(batch_shape=job.batch_shape, dtype="uint8", name="image")
    x = layers.Rescaling(
        scale=[1 / (255 * s) for s in job.std],
        offset=[-m / s for m, s in zip(job.mean, job.std)],
        name="normalize",
    )(inputs)
    ids = ClassIds(job.output_dtype, name="class_ids")(model(x))
    return keras.Model(inputs, ids, name=f"{model.name}_end_to_end")


def _write_with_tensorflow(model, path, job, calibration):
    import tensorflow as tf

    served = _serving_model(model, job)
    signature = [tf.TensorSpec(job.batch_shape, job.input_dtype, name="image")]
    if job.format == "tf_saved_model":
        served.export(path, format="tf_saved_model", input_signature=signature, verbose=False)
    elif job.format == "litert":
        options = _litert_options(tf, job.quantize, calibration)
        try:
            served.export(path, format="litert", input_signature=signature, verbose=False,
                          **options)
        except Exception as error:
            # The converter's message ends with an MLIR dump: keep its first lines.
            lines = [line for line in str(error).splitlines() if line.strip()]
            needs = [line for line in lines if line.startswith("TF Select ops:")]
            raise RuntimeError(
                "LiteRT conversion with builtin ops only (no Flex/SELECT_TF_OPS, for mobile "
                f"runtimes) failed: {' '.join(needs + lines[:3])[:1500]}") from error
    else:
        float_path = path if job.quantize is None else f"{path}.float32.onnx"
        served.export(float_path, format="onnx", input_signature=signature, verbose=False)
        _explicit_dilated_padding(float_path)
        if job.quantize is not None:
            # onnxruntime's quantisation tools drop debugging files (a failed symbolic shape
            # inference, its external data) into the working directory: make it the staging
            # folder, which is deleted whatever happens.
            previous = os.getcwd()
            os.chdir(os.path.dirname(path))
            try:
                _quantize_onnx(float_path, path, job.quantize, calibration, job.static)
            finally:
                os.chdir(previous)
            os.unlink(float_path)


def _litert_options(tf, quantize, calibration):
    """Converter settings of Keras's LiteRT exporter: builtin ops only, and the quantisation."""
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is None:
        return {"target_spec": {"supported_ops": builtins}}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        options["target_spec"] = {"supported_ops": builtins, "supported_types": [tf.float16]}
    elif quantize == "dynamic_int8":
        options["target_spec"] = {"supported_ops": builtins}
    else:
        options["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}

        def representative_dataset():
            for sample in calibration:
                yield [sample[None]]

        options["representative_dataset"] = representative_dataset
    return options


def _explicit_dilated_padding(path):
    """Writes out the padding of dilated stride-1 ``Conv(auto_pad="SAME_*")`` nodes.

    tf2onnx keeps TensorFlow's "SAME" of a convolution whose input size is unknown as
    ``auto_pad``, which onnxruntime refuses with a dilation ("Dilation not supported for
    AutoPadType::SAME_UPPER"). At stride 1 "SAME" pads ``dilation * (kernel - 1)`` in all,
    whatever the input size, so the pads are known and the node is rewritten in place.
    """
    import onnx

    model = onnx.load(path)
    changed = False
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("auto_pad", b"NOTSET")
        dilations = attrs.get("dilations", [1])
        if (node.op_type != "Conv" or mode not in (b"SAME_UPPER", b"SAME_LOWER")
                or any(s != 1 for s in attrs.get("strides", [1])) or max(dilations) == 1
                or "kernel_shape" not in attrs):
            continue
        totals = [d * (k - 1) for d, k in zip(dilations, attrs["kernel_shape"])]
        small = [t // 2 for t in totals]
        begins = small if mode == b"SAME_UPPER" else [t - h for t, h in zip(totals, small)]
        ends = [t - b for t, b in zip(totals, begins)]
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend(kept + [onnx.helper.make_attribute("pads", begins + ends)])
        changed = True
    if changed:
        onnx.save(model, path)


def _quantize_onnx(source, destination, quantize, calibration, static):
    """onnxruntime's quantisers: float16 weights and compute (float32 input and output),
    dynamic int8 (ConvInteger), or static int8 in QDQ form calibrated on ``calibration``
    (symbolic shape inference, which fails on dynamic height and width, only when static)."""
    import onnx
    from onnxruntime import quantization
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if quantize == "float16":
        onnx.save(convert_float_to_float16(onnx.load(source), keep_io_types=True), destination)
    elif quantize == "dynamic_int8":
        quantization.quantize_dynamic(source, destination,
                                      weight_type=quantization.QuantType.QInt8)
    else:
        name = onnx.load(source, load_external_data=False).graph.input[0].name
        prepared = f"{source}.prepared.onnx"
        quantization.quant_pre_process(source, prepared, skip_symbolic_shape=not static)

        class Reader(quantization.CalibrationDataReader):
            def __init__(self):
                self.samples = iter(calibration)

            def get_next(self):
                sample = next(self.samples, None)
                return None if sample is None else {name: sample[None]}

        quantization.quantize_static(
            prepared, destination, Reader(), quant_format=quantization.QuantFormat.QDQ,
            per_channel=True, activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
        )
        os.unlink(prepared)


# === Reading back ===


def _load_artifact(path, fmt):
    """A function ``inputs (N, H, W, C) -> outputs (N, ...)`` running the artifact."""
    if fmt == "tf_saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)  # kept alive by the closure: it owns the variables
        return lambda inputs: loaded.serve(tf.constant(inputs)).numpy()
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]["index"]
        target = interpreter.get_output_details()[0]["index"]

        def run(inputs):
            outputs = []
            for sample in inputs:
                interpreter.set_tensor(source, sample[None])
                interpreter.invoke()
                outputs.append(interpreter.get_tensor(target)[0].copy())
            return np.stack(outputs)

        return run
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda inputs: session.run(None, {name: inputs})[0]


def op_histogram(path, format):
    """``(histogram, dilated)``: op counts of an exported graph, and how many convolutions
    carry a dilation themselves (LiteRT, ONNX; None for a SavedModel, whose TensorFlow graph
    expresses dilation with SpaceToBatchND). Flex and custom LiteRT ops count as
    ``"CUSTOM:<name>"``."""
    _choice("format", format, FORMATS)
    if format == "litert":
        return _litert_histogram(path)
    if format == "onnx":
        import onnx

        graph = onnx.load(path, load_external_data=False).graph
        counts = collections.Counter(node.op_type for node in graph.node)
        dilated = sum(
            1 for node in graph.node if node.op_type in DILATED_OPS
            and any(a.name == "dilations" and max(a.ints) > 1 for a in node.attribute))
        return dict(counts), dilated
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())
    meta_graph = proto.meta_graphs[0]
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    # The ops reachable from the serving signature's outputs, through the function calls.
    outputs = {tensor.name.split(":")[0]
               for tensor in meta_graph.signature_def["serving_default"].outputs.values()}
    pending = [node.attr["f"].func.name for node in graph.node
               if node.name in outputs and "f" in node.attr]
    seen, counts = set(), collections.Counter()
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            if "f" in node.attr:
                pending.append(node.attr["f"].func.name)
            if node.op not in PLUMBING_OPS:
                counts[node.op] += 1
    return dict(counts), None


def _litert_histogram(path):
    from ai_edge_litert import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    with open(path, "rb") as handle:
        buffer = handle.read()
    model = schema.Model.GetRootAs(buffer, 0)
    opcodes = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            opcodes.append(f"CUSTOM:{code.CustomCode().decode()}")
        else:
            opcodes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    counts, dilated = collections.Counter(), 0
    options = {"CONV_2D": schema.Conv2DOptions, "DEPTHWISE_CONV_2D": schema.DepthwiseConv2DOptions}
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            name = opcodes[operator.OpcodeIndex()]
            counts[name] += 1
            table = operator.BuiltinOptions()
            if name in options and table is not None:
                parsed = options[name]()
                parsed.Init(table.Bytes, table.Pos)
                dilated += max(parsed.DilationHFactor(), parsed.DilationWFactor()) > 1
    return dict(counts), dilated


# === Verification ===


def _verify(model, staged, job, task, report, min_agreement):
    """Runs the artifact and the Keras model on embedded scenes; fills ``report``."""
    run = _load_artifact(staged, job.format)
    quantized = job.quantize in ("dynamic_int8", "int8")
    tolerance = None if quantized else TOLERANCES[job.quantize]
    report.tolerance = tolerance
    sizes = [tuple(job.batch_shape[1:3])] if job.static else list(VERIFY_SIZES)
    classes = model.outputs[0].shape[-1]
    confusion = np.zeros((classes, classes), "int64")
    for index, (height, width) in enumerate(sizes):
        count = AGREEMENT_SAMPLES if index == 0 and (quantized or job.end_to_end) else FLOAT_SAMPLES
        inputs = _artifact_inputs(_scenes(count, height, width, seed=0), job)
        expected = np.asarray(model.predict(_keras_inputs(inputs, job), batch_size=4, verbose=0),
                              "float32")
        got = run(inputs)
        check = {"size": (height, width), "samples": count}
        report.checks.append(check)
        expected_ids = expected.argmax(-1)
        want_shape = expected_ids.shape if job.end_to_end else expected.shape
        if got.shape != want_shape:
            report.failures.append(f"{height}x{width}: output shape {got.shape}, Keras "
                                   f"{want_shape}")
            continue
        if job.end_to_end:
            ids = got.astype("int64")
            check["agreement"] = float(np.mean(ids == expected_ids))
            if tolerance is not None:
                # A float export may flip a class only where Keras's top two logits tie
                # within the tolerance.
                top2 = np.sort(expected, axis=-1)[..., -2:]
                margin = top2[..., 1] - top2[..., 0]
                limit = 2 * tolerance * max(1.0, float(np.abs(expected).max()))
                flips = int(np.sum((ids != expected_ids) & (margin > limit)))
                if flips:
                    report.failures.append(f"{height}x{width}: {flips} class ids differ from "
                                           "Keras's argmax where its logits do not tie")
        else:
            if not np.all(np.isfinite(got)):
                report.failures.append(f"{height}x{width}: non-finite outputs")
                continue
            diff = float(np.abs(got.astype("float32") - expected).max())
            scale = max(1.0, float(np.abs(expected).max()))
            check.update(max_abs_diff=diff, max_rel_diff=diff / scale)
            report.max_abs_diff = max(report.max_abs_diff or 0.0, diff)
            report.max_rel_diff = max(report.max_rel_diff or 0.0, diff / scale)
            if tolerance is not None and diff > tolerance * scale:
                report.failures.append(f"{height}x{width}: max |diff| {diff:.2e} exceeds "
                                       f"{tolerance:.0e} x {scale:.3g}")
            ids = got.argmax(-1)
        confusion += np.bincount(expected_ids.ravel() * classes + ids.ravel().clip(0, classes - 1),
                                 minlength=classes * classes).reshape(classes, classes)
    if confusion.sum():
        report.agreement = float(np.trace(confusion) / confusion.sum())
        if task == "segmenter":
            union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
            present = union > 0
            report.miou = float(np.mean(np.diag(confusion)[present] / union[present]))
    if min_agreement is not None and report.agreement is not None \
            and report.agreement < min_agreement:
        report.failures.append(f"agreement {report.agreement:.4f} is below min_agreement="
                               f"{min_agreement}")
    report.passed = not report.failures


# === Command line ===


def _load_model(args):
    """The model the command exports: a ``.keras`` file, or a variant built here."""
    import keras_drn

    if args.model.endswith(".keras"):
        return keras.saving.load_model(args.model, compile=False)
    if args.task == "classifier":
        return keras_drn.get_model(args.model, weights=args.weights,
                                   classes=args.num_classes or 1000)
    return keras_drn.DRNSegmenter(
        args.model, num_classes=args.num_classes or 19, head=args.head, context=args.context,
        upsampling=args.upsampling, weights=args.weights,
    )


def build_parser(parser=None):
    """The export arguments, added to ``parser`` (``keras-drn export``) or to a new parser."""
    parser = parser or argparse.ArgumentParser(
        prog="keras-drn export",
        description="Export a DRN classifier or segmenter to a TensorFlow SavedModel, LiteRT "
        "or ONNX file, load it back, compare it with Keras and print the report (max "
        "difference or agreement, op histogram).",
    )
    parser.add_argument("model", help="a .keras model file, or a variant name (keras-drn models) "
                        "to build a model from (see --task, --weights)")
    parser.add_argument("output", help="the SavedModel folder, .tflite or .onnx file to write")
    parser.add_argument("--format", default="tf_saved_model", choices=FORMATS,
                        help="export format (default tf_saved_model)")
    parser.add_argument("--input-shape", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="static input size (needed by litert); default: the model's")
    parser.add_argument("--quantize", default="none",
                        choices=["none", *[q for q in QUANTIZATIONS if q]],
                        help="quantisation (litert, onnx; default none: float32)")
    parser.add_argument("--representative-data", metavar="embedded|FILE.npy",
                        help="int8 calibration inputs: 'embedded' (the embedded synthetic scenes) "
                        "or a .npy file of (N, H, W, C) inputs")
    parser.add_argument("--end-to-end", action="store_true",
                        help="uint8 RGB in, normalisation and argmax inside, class ids out")
    parser.add_argument("--mean", type=float, nargs=3, default=IMAGENET_MEAN,
                        help="normalisation mean on the [0, 1] scale (default ImageNet's)")
    parser.add_argument("--std", type=float, nargs=3, default=IMAGENET_STD,
                        help="normalisation std on the [0, 1] scale (default ImageNet's)")
    parser.add_argument("--min-agreement", type=float,
                        help="fail when fewer pixels/images than this fraction match Keras")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--task", default="segmenter", choices=["classifier", "segmenter"],
                        help="with a variant name: build a classifier or a DRNSegmenter")
    parser.add_argument("--num-classes", type=int,
                        help="with a variant name: classes (default 1000 / 19)")
    parser.add_argument("--head", default="drn", choices=["drn", "gcn"],
                        help="with a variant name: segmentation head")
    parser.add_argument("--context", choices=["parsenet"], help="segmenter global context")
    parser.add_argument("--upsampling", default="deconv", choices=["deconv", "bilinear"],
                        help="segmenter upsampling")
    parser.add_argument("--weights", help="with a variant name: 'imagenet' or a weights file")
    return parser


def run(args):
    """Exports as parsed by ``build_parser``; the report is printed; returns 0."""
    representative = args.representative_data
    if representative is not None and representative != "embedded":
        representative = np.load(representative)
    export(
        _load_model(args), args.output, format=args.format,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        quantize=None if args.quantize == "none" else args.quantize,
        representative_data=representative, end_to_end=args.end_to_end, mean=args.mean,
        std=args.std, min_agreement=args.min_agreement, overwrite=args.overwrite,
    )
    return 0


def main(argv=None):
    """``python -m keras_drn.export MODEL OUTPUT --format litert --input-shape 512 1024``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
