"""Deployment exports that are checked against Keras: TensorFlow SavedModel, LiteRT (float32,
float16, dynamic-range int8, full int8) and ONNX, for DRN classifiers and segmenters.

``keras_drn.export(model, path, format=...)`` (``api``) stages the artifact beside ``path``
(``staging``), writes it with Keras's ``model.export`` under TensorFlow (``tensorflow``; ONNX
through tf2onnx and onnxruntime's quantisers: ``onnx``), loads it back and compares it with
the Keras model (``verify``, on inputs from ``inputs``), and installs it only when it passes;
``report`` has what it returns or raises, ``serving`` the end-to-end graph (uint8 in, class
ids out), ``keras_drn.cli.export`` the ``keras-drn export`` command. Normalisation lives in the model
(``keras_drn.models.preprocessing``); the export never adds it on its own.
"""

from keras_drn.constants import IMAGENET_MEAN, IMAGENET_STD
from keras_drn.export.api import export
from keras_drn.export.inputs import CALIBRATION_SAMPLES, VERIFY_SIZES
from keras_drn.export.job import FORMAT_QUANTIZATIONS, FORMATS, QUANTIZATIONS, SUFFIXES
from keras_drn.export.report import ExportReport, ExportVerificationError
from keras_drn.export.serving import ClassIds
from keras_drn.export.verify import AGREEMENT_SAMPLES, FLOAT_SAMPLES, TOLERANCES, op_histogram

__all__ = [
    "AGREEMENT_SAMPLES",
    "CALIBRATION_SAMPLES",
    "ClassIds",
    "ExportReport",
    "ExportVerificationError",
    "FLOAT_SAMPLES",
    "FORMATS",
    "FORMAT_QUANTIZATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "QUANTIZATIONS",
    "SUFFIXES",
    "TOLERANCES",
    "VERIFY_SIZES",
    "export",
    "op_histogram",
]
