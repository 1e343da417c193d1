"""Writing SavedModel, LiteRT and ONNX graphs with Keras's ``model.export`` under the
TensorFlow backend (each with the writer of its entry in ``keras_drn.export.formats``), in
process or, for a model built under JAX or PyTorch, in a ``KERAS_BACKEND=tensorflow``
subprocess that loads it from a ``.keras`` file (the artifacts are the same whichever backend
trained the model).

Mobile graphs: LiteRT models are converted with builtin ops only (no Flex ops, no
SELECT_TF_OPS) and a static batch of 1 with a static height and width. keras_drn's models
write each dilated convolution as one dilated Conv2D (``keras_drn.layers.DilatedConv2D``); a
plain ``keras.layers.Conv2D`` lowers it to SPACE_TO_BATCH_ND -> CONV_2D -> BATCH_TO_SPACE_ND,
which the converter folds back into one dilated CONV_2D only when every shape is static
(keras issue 17450): the static shape keeps such layers in custom heads mobile-friendly too.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np

from keras_drn import atomic
from keras_drn.export.formats import get_format
from keras_drn.export.job import Job
from keras_drn.export.serving import serving_model
from keras_drn.layers.dilated_conv import plain_convolutions

# Run by the subprocess (``python -c``): this module, by name.
WORKER = ("import sys; from keras_drn.export.tensorflow import worker_main; "
          "sys.exit(worker_main(sys.argv[1]))")


def write_artifact(model, staged, job, calibration, staging):
    """Writes the artifact at ``staged`` (inside the ``staging`` folder); returns how (for the
    report)."""
    if keras.backend.backend() == "tensorflow":
        write_with_tensorflow(model, staged, job, calibration)
        return "in-process (tensorflow backend)"
    write_in_subprocess(model, staged, job, calibration, staging)
    return "by a KERAS_BACKEND=tensorflow subprocess"


def write_in_subprocess(model, staged, job, calibration, staging):
    """Saves ``model`` as ``.keras`` in ``staging`` and has a TensorFlow-backend Python write
    the artifact at ``staged``."""
    model_path = os.path.join(staging, "model.keras")
    atomic.write_atomically(model_path, model.save, what="export staging")
    spec = {"model": model_path, "artifact": staged, "job": job.to_json(), "calibration": None}
    if calibration is not None:
        spec["calibration"] = os.path.join(staging, "calibration.npy")
        atomic.write_atomically(spec["calibration"],
                                lambda temporary: np.save(temporary, calibration),
                                what="export staging")
    spec_path = os.path.join(staging, "job.json")
    atomic.write_json(spec_path, spec, what="export staging")
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    result = subprocess.run([sys.executable, "-c", WORKER, spec_path], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"The TensorFlow export subprocess failed (exit {result.returncode}); its last "
            f"output:\n{(result.stdout + result.stderr)[-4000:]}")


def worker_main(spec_path):
    """Entry point of the subprocess: loads the ``.keras`` model under TensorFlow and writes."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("The export worker needs KERAS_BACKEND=tensorflow.")
    with open(spec_path) as handle:
        spec = json.load(handle)
    model = keras.saving.load_model(spec["model"], compile=False)
    calibration = None if spec["calibration"] is None else np.load(spec["calibration"])
    write_with_tensorflow(model, spec["artifact"], Job.from_json(spec["job"]), calibration)
    return 0


def write_with_tensorflow(model, path, job, calibration):
    """Writes ``serving_model(model, job)`` at ``path`` (TensorFlow backend only), each
    convolution traced as one op (``plain_convolutions``)."""
    with plain_convolutions():
        _write_with_tensorflow(model, path, job, calibration)


def _write_with_tensorflow(model, path, job, calibration):
    import tensorflow as tf

    served = serving_model(model, job)
    signature = [tf.TensorSpec(job.batch_shape, job.input_dtype, name="image")]
    get_format(job.format).write(served, path, signature, job, calibration)


def write_saved_model(served, path, signature, job, calibration):
    """The ``tf_saved_model`` writer of ``keras_drn.export.formats``: a SavedModel folder."""
    served.export(path, format="tf_saved_model", input_signature=signature, verbose=False)


def write_litert(served, path, signature, job, calibration):
    """The ``litert`` writer of ``keras_drn.export.formats``: a ``.tflite`` file of builtin
    ops only, quantised as ``job.quantize``."""
    import tensorflow as tf

    options = litert_options(tf, job.quantize, calibration)
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


def litert_options(tf, quantize, calibration):
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
