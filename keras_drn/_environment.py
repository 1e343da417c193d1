"""Runs before Keras is imported (first line of ``keras_drn/__init__.py``); imports no Keras.

- Backend: with ``KERAS_BACKEND`` unset and no backend in ``~/.keras/keras.json``, Keras picks
  TensorFlow and fails with a long ModuleNotFoundError where only the jax or torch extra is
  installed. We pick the first installed of tensorflow, jax, torch instead, or raise an
  ImportError that says what to install or set.
- TensorFlow's C++ INFO/WARNING lines (oneDNN notices, CPU features, absl), printed on every
  backend since tf.data is TensorFlow: quiet unless ``TF_CPP_MIN_LOG_LEVEL`` is set, or the
  ``keras-drn`` command runs with ``--verbose``.
"""

import importlib.util
import json
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")


def _configured_backend():
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as stream:
            return json.load(stream).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def choose_backend():
    """Sets ``KERAS_BACKEND`` to an installed backend when nothing chose one; returns it."""
    if "keras" in sys.modules:
        return None  # Keras already chose
    configured = _configured_backend()
    if configured:
        return configured
    installed = [name for name in BACKENDS if importlib.util.find_spec(name) is not None]
    if not installed:
        raise ImportError(
            "keras_drn needs a Keras backend and none is installed: pip install "
            "'keras-drn[jax]' (or [tensorflow], or [torch]), then set KERAS_BACKEND=jax|"
            "tensorflow|torch if you installed several.")
    os.environ["KERAS_BACKEND"] = installed[0]
    return installed[0]


def quiet_tensorflow():
    verbose = os.path.basename(sys.argv[0] or "") == "keras-drn" and "--verbose" in sys.argv
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


choose_backend()
quiet_tensorflow()
