"""Where the current Keras backend runs: the one place layers and models ask it."""

import functools

import keras


def platform(backend=None):
    """``"cpu"``, ``"gpu"`` or ``"tpu"``: where ``backend`` (default: Keras's) runs by default."""
    return _platform(backend or keras.backend.backend())


@functools.cache  # asked at every trace of a layer; devices do not change within a process
def _platform(backend):
    if backend == "jax":
        import jax

        return jax.default_backend()
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
    return "cpu"


def tensorflow_on_cpu():
    """True on the TensorFlow backend when TensorFlow sees no GPU."""
    return keras.backend.backend() == "tensorflow" and platform("tensorflow") == "cpu"
