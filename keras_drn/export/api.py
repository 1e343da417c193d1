"""``keras_drn.export``: what a call asks for (format, quantisation, size, task, the model's
normalisation), then staging, writing, verification and installation.

The normalisation contract: a model that takes raw images carries it in a ``preprocessing``
layer (``keras_drn.models.preprocessing``); the export never adds one on its own. End to end,
the artifact takes uint8 RGB, casts it to float32 and returns the argmax: a model without a
``preprocessing`` layer is exported end to end only when ``mean`` and ``std`` are given (the
export then adds that layer, and the report says so).
"""

import os
import time

import keras
import numpy as np

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.export import staging as staging_folder
from keras_drn.export import tensorflow as writer
from keras_drn.export import verify as verifier
from keras_drn.export.inputs import calibration as calibration_inputs
from keras_drn.export.formats import QUANTIZATIONS, REGISTRY, get_format
from keras_drn.export.job import Job, check_choice
from keras_drn.export.report import ExportReport, ExportVerificationError
from keras_drn.models.preprocessing import preprocessing_of, resolve_statistics
from keras_drn.models.preprocessing import with_preprocessing
from keras_drn.weights.loading import load_keras_model


def export(
    model,
    path,
    format="tf_saved_model",
    input_shape=None,
    quantize=None,
    representative_data=None,
    *,
    end_to_end=False,
    mean=None,
    std=None,
    min_agreement=None,
    overwrite=False,
    verbose=True,
):
    """Exports a DRN classifier or segmenter for deployment and verifies the file.

    The artifact is written into a staging folder beside ``path``
    (``.<name>.<pid>.<hex>.staging``; those of killed exports are removed first), loaded back
    with its own runtime (``tf.saved_model.load``, the LiteRT interpreter of
    ``ai-edge-litert``, ``onnxruntime``), run on scenes of the embedded dataset
    (``keras_drn.data.make_scenes``) and compared with the Keras model on the same inputs;
    only an export that passes is moved to ``path``, with the umask's permissions. Anything
    that fails leaves no file behind. Under JAX or PyTorch a ``KERAS_BACKEND=tensorflow``
    subprocess writes the artifact and the check runs against the original model.

    Args:
        model: a Keras model with one image input ``(batch, H, W, C)`` and class logits or
            probabilities out: ``(batch, classes)`` or ``(batch, H, W, classes)``. Any backend.
            Or the path of a ``.keras`` file of one, checked before it is loaded (a damaged
            or truncated file is named: ``keras_drn.weights.loading.load_keras_model``).
            A model with a ``preprocessing`` layer (built with ``include_preprocessing=True``,
            the default with pretrained weights: ``keras_drn.DRN_C_26``, ``DRNSegmenter``,
            ``build_classifier``) takes raw 0-255 RGB, and so does its artifact; one without
            takes normalised inputs.
        path: where to write: a folder (``"tf_saved_model"``), a ``.tflite`` file
            (``"litert"``) or an ``.onnx`` file (``"onnx"``).
        format: a name of the registry ``keras_drn.export.formats.REGISTRY``:
            ``"tf_saved_model"``, ``"litert"`` or ``"onnx"``.
        input_shape: ``None`` or ``(height, width)``. ``None`` keeps the model's: a SavedModel
            or ONNX file of an any-size model then takes any height and width (and any batch).
            LiteRT needs a static size (batch 1: each dilated convolution is one CONV_2D).
        quantize: ``None`` (float32), ``"float16"`` (float16 weights), ``"dynamic_int8"``
            (int8 weights, float activations) or ``"int8"`` (weights and activations int8,
            float input and output; needs ``representative_data``). LiteRT and ONNX only;
            ONNX float16 needs a static ``input_shape``.
        representative_data: int8 calibration samples as the artifact takes them
            (``(N, H, W, C)`` float32, or uint8 RGB with ``end_to_end``; an iterable of arrays
            works too), or ``"embedded"`` for 32 embedded synthetic scenes.
        end_to_end: uint8 RGB in, cast to float32 for the model's ``preprocessing`` layer,
            argmax inside, class ids out (a segmenter's mask is uint8 when it has at most 256
            classes, else int32; a classifier's top-1 id is int32). Never normalises: a model
            without a ``preprocessing`` layer needs ``mean`` and ``std``.
        mean, std: per-channel statistics of 0-1 RGB the model was trained with, or ``None``.
            End to end, for a model without a ``preprocessing`` layer: the export adds one
            (``with_preprocessing``) and the report says so. For a model with one they must
            match it (else ValueError naming both). Otherwise they only shape the normalised
            verification scenes of a model without one (default ImageNet's).
        min_agreement: optional lower bound on the agreement with Keras (0 to 1); quantised
            exports are otherwise checked for shape and finite outputs and their agreement is
            reported.
        overwrite: replace an existing ``path``; otherwise an existing one is refused.
        verbose: print the report.

    Returns:
        An ``ExportReport``: file size, what normalises the input, max abs/relative difference
        to Keras per checked size (float32 must be within 1e-4 and float16 within 1e-2 of
        ``max(1, max |Keras output|)``), agreement and mIoU (quantised and class-id exports),
        op histogram and, for LiteRT, whether the graph is mobile-friendly (builtin ops only,
        no space-to-batch chains).

    Raises:
        ValueError: an unknown format or quantisation (the message lists the choices), int8
            without ``representative_data``, a wrong suffix or shape, an end-to-end export
            of a model without ``preprocessing`` layer and without ``mean``/``std``, or
            ``mean``/``std`` that differ from the model's ``preprocessing`` layer.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ExportVerificationError: the artifact does not match Keras (nothing is written).
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_keras_model(model)
    kind = get_format(format)
    check_choice("quantize", quantize, QUANTIZATIONS)
    if quantize not in kind.quantizations:
        quantised = ", ".join(repr(name) for name, f in REGISTRY.items()
                              if any(q is not None for q in f.quantizations))
        raise ValueError(f"format={format!r} takes quantize in {kind.quantizations}; "
                         f"received quantize={quantize!r}. Quantised exports: {quantised}.")
    path = os.path.abspath(os.fspath(path))
    if kind.suffix and not path.endswith(kind.suffix):
        raise ValueError(f"A {format} export is {kind.artifact}; received path={path!r}.")
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
    height, width = _size(model, kind, quantize, input_shape)
    model, preprocessing, statistics = _preprocessing(model, mean, std, end_to_end)
    channels = model.inputs[0].shape[-1]
    classes = model.outputs[0].shape[-1]
    output_dtype = "float32"
    if end_to_end:
        output_dtype = "uint8" if task == "segmenter" and classes and classes <= 256 else "int32"
    job = Job(format, quantize, (1 if kind.static else None, height, width, channels),
              bool(end_to_end), output_dtype, *(statistics or (None, None)))
    calibration = None
    if representative_data is not None:
        calibration = calibration_inputs(representative_data, job, channels)

    staging_folder.remove_stale(os.path.dirname(path))
    staging = staging_folder.create(path)
    try:
        staged = os.path.join(staging, os.path.basename(path))
        start = time.time()
        route = writer.write_artifact(model, staged, job, calibration, staging)
        report = ExportReport(
            path=path, format=format, quantize=quantize, task=task, end_to_end=job.end_to_end,
            backend=keras.backend.backend(), route=route, input_shape=job.batch_shape,
            input_dtype=job.input_dtype, output_dtype=output_dtype, preprocessing=preprocessing,
            size_bytes=staging_folder.size_on_disk(staged), export_seconds=time.time() - start,
        )
        report.op_histogram, report.dilated_convs = verifier.op_histogram(staged, format)
        if kind.mobile:
            report.mobile_friendly = verifier.mobile_friendly(report.op_histogram)
        start = time.time()
        verifier.verify(model, staged, job, task, report, min_agreement)
        report.verify_seconds = time.time() - start
        if verbose:
            print(report.summary())
        if report.failures:
            raise ExportVerificationError(
                f"The {format} export does not match the Keras model; nothing was written to "
                f"{path}: " + "; ".join(report.failures), report)
        staging_folder.install(staged, path, overwrite, staging)
    finally:
        staging_folder.remove(staging)
    return report


def _preprocessing(model, mean, std, end_to_end):
    """``(model to export, report.preprocessing, statistics of normalised inputs or None)``.

    The model's own ``preprocessing`` layer wins (``mean``/``std`` must match it); end to end,
    a model without one gets one from ``mean``/``std``, and without those the export is
    refused: it does not guess the statistics a model was trained with."""
    given = None
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError(f"Give both mean and std (0-1 RGB) or neither; received "
                             f"mean={mean!r}, std={std!r}.")
        given = resolve_statistics((mean, std))
    carried = preprocessing_of(model)
    if carried is not None:
        if given is not None and not np.allclose(given, carried, rtol=1e-5, atol=1e-6):
            raise ValueError(
                f"{model.name!r} carries its own 'preprocessing' layer with mean="
                f"{_rounded(carried[0])}, std={_rounded(carried[1])}, and mean={_rounded(given[0])}"
                f", std={_rounded(given[1])} were given: they differ, and an export never "
                "normalises twice. Drop mean/std (--mean/--std) to export with the model's own "
                "statistics, or rebuild the model with include_preprocessing=True, "
                "mean=(r, g, b), std=(r, g, b).")
        return model, {"mean": carried[0], "std": carried[1], "added": False}, None
    if end_to_end:
        if given is None:
            raise ValueError(
                f"end_to_end=True takes raw uint8 RGB, and {model.name!r} has no "
                "'preprocessing' layer: it takes normalised inputs and the export does not "
                "guess the statistics it was trained with. Either give them, mean=(r, g, b) "
                "and std=(r, g, b) on the 0-1 scale (keras-drn export --mean R G B --std R G B; "
                "the export then adds a preprocessing layer and its report says so), or build "
                "the model with its normalisation inside: include_preprocessing=True "
                "(keras_drn.DRN_C_26 and the other variants, DRNSegmenter or "
                "keras_drn.build_classifier; with mean=/std= for the last two).")
        added = with_preprocessing(model, *given)
        return added, {"mean": given[0], "std": given[1], "added": True}, None
    return model, None, given or (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD))


def _rounded(values):
    return tuple(round(v, 6) for v in values)


def _task(model):
    """"classifier" or "segmenter", from the shapes of the single input and output."""
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


def _size(model, kind, quantize, input_shape):
    """The exported (height, width): ``input_shape``, else the model's (None where dynamic);
    ValueError when ``kind`` (an ``ExportFormat``) with ``quantize`` needs a static size and
    it is not."""
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
    why = kind.needs_static_size(quantize)
    if why and None in size:
        raise ValueError(f"{why} Pass input_shape=(height, width); the model takes any size "
                         f"({model_hw}).")
    return size


