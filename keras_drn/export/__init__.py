"""Deployment exports that are checked against Keras: TensorFlow SavedModel, LiteRT (float32,
float16, dynamic-range int8, full int8) and ONNX, for DRN classifiers and segmenters.

``keras_drn.export(model, path, format=...)`` (``api``) stages the artifact beside ``path``
(``staging``), writes it with Keras's ``model.export`` under TensorFlow (``tensorflow``; ONNX
through tf2onnx and onnxruntime's quantisers: ``onnx``), loads it back and compares it with
the Keras model (``verify``, on inputs from ``inputs``), and installs it only when it passes;
``formats`` is the registry of formats (suffix, quantisations, writer, loader, op counter)
that all of them read, ``report`` has what export returns or raises, ``serving`` the end-to-end
graph (uint8 in, class ids out), ``keras_drn.cli.export`` the ``keras-drn export`` command.
Normalisation lives in the model (``keras_drn.models.preprocessing``); the export never adds
it on its own.

The names below are imported when first used, so that ``keras_drn.export.formats`` (and
``job``) import without Keras.
"""

import importlib

# Public name -> the module of keras_drn.export (or keras_drn) that defines it.
_PUBLIC = {
    "AGREEMENT_SAMPLES": "keras_drn.export.verify",
    "CALIBRATION_SAMPLES": "keras_drn.export.inputs",
    "ClassIds": "keras_drn.export.serving",
    "ExportFormat": "keras_drn.export.formats",
    "ExportReport": "keras_drn.export.report",
    "ExportVerificationError": "keras_drn.export.report",
    "FLOAT_SAMPLES": "keras_drn.export.verify",
    "FORMATS": "keras_drn.export.formats",
    "FORMAT_QUANTIZATIONS": "keras_drn.export.formats",
    "IMAGENET_MEAN": "keras_drn.constants",
    "IMAGENET_STD": "keras_drn.constants",
    "QUANTIZATIONS": "keras_drn.export.formats",
    "REGISTRY": "keras_drn.export.formats",
    "SUFFIXES": "keras_drn.export.formats",
    "TOLERANCES": "keras_drn.export.verify",
    "VERIFY_SIZES": "keras_drn.export.inputs",
    "export": "keras_drn.export.api",
    "op_histogram": "keras_drn.export.verify",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_drn.export' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
