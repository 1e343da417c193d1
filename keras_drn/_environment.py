"""What runs before Keras is imported (``prepare``, called by ``keras_drn/__init__.py`` before
it imports anything that imports Keras); imports no Keras.

- Backend: with ``KERAS_BACKEND`` unset and no backend in ``~/.keras/keras.json``, Keras picks
  TensorFlow and fails with a long ModuleNotFoundError where only the jax or torch extra is
  installed. We pick the first installed of tensorflow, jax, torch instead, or raise an
  ImportError that says what to install or set; a backend chosen but not installed
  (``KERAS_BACKEND=jax`` without jax) gets its pip line instead of Keras's 31-line
  ModuleNotFoundError. In the ``keras-drn`` command these are one line and exit status 2.
- TensorFlow's C++ INFO/WARNING lines (oneDNN notices, CPU features, absl), printed on every
  backend since tf.data is TensorFlow: the ``keras-drn`` command keeps them quiet unless it
  runs with ``--verbose`` (a library import changes nothing).
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


def _installed():
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def _source():
    return ("KERAS_BACKEND" if os.environ.get("KERAS_BACKEND")
            else "the backend of ~/.keras/keras.json")


def _in_command():
    return os.path.basename(sys.argv[0] or "") == "keras-drn"


def _refusal(message):
    """The ImportError to raise with ``message``; in the ``keras-drn`` command, the message
    alone on stderr and exit status 2 instead (no traceback: no code of the user's is
    involved)."""
    if _in_command() and "--verbose" not in sys.argv:
        print(f"keras-drn: {message}", file=sys.stderr)
        raise SystemExit(2)
    return ImportError(message)


def choose_backend():
    """Sets ``KERAS_BACKEND`` to an installed backend when nothing chose one; returns it."""
    if "keras" in sys.modules:
        return None  # Keras already chose
    configured = _configured_backend()
    if configured in BACKENDS and importlib.util.find_spec(configured) is None:
        raise _refusal(f"the Keras backend is {configured} ({_source()}), but {configured} "
                       f"is not installed: pip install 'keras-drn[{configured}]', or set "
                       f"KERAS_BACKEND to an installed one "
                       f"({', '.join(_installed()) or 'none is'}).")
    if configured:
        return configured
    installed = _installed()
    if not installed:
        raise _refusal("keras_drn needs a Keras backend and none is installed: pip install "
                       "'keras-drn[jax]' (or [tensorflow], or [torch]), then set "
                       "KERAS_BACKEND=jax|tensorflow|torch if you installed several.")
    os.environ["KERAS_BACKEND"] = installed[0]
    return installed[0]


def quiet_tensorflow():
    """In the ``keras-drn`` command without ``--verbose``: imports TensorFlow (which tf.data
    and the TensorFlow backend need anyway) with the process's stderr pointed at /dev/null.
    Its load-time lines come from C++ before absl's logging starts, so TF_CPP_MIN_LOG_LEVEL
    does not reach them; the variable then quiets TensorFlow's later INFO/WARNING lines."""
    if not _in_command() or "--verbose" in sys.argv:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)



def prepare():
    """Chooses the backend and, in the command, quiets TensorFlow's load-time lines."""
    choose_backend()
    quiet_tensorflow()
