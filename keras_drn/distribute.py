"""Multi-device data parallel training on the engines Keras already has.

The reference trains DRN-D-105 on several GPUs with ``torch.nn.DataParallel`` and
synchronized BatchNorm (``segment.py --bn-sync``; Yu et al. 2017). In Keras 3:

- TensorFlow: ``tf.distribute.MirroredStrategy``; each replica gets ``batch / replicas``
  images and gradients are summed across replicas. BatchNormalization uses each replica's
  own batch statistics unless synchronized (``synchronize_batchnorm``). Each replica
  averages the loss over its own labelled pixels, so with ignore labels the step differs
  slightly from the reference, which gathers the outputs and averages over the whole batch.
- JAX: ``keras.distribution.DataParallel``; arrays are global and sharded over the batch
  axis, so the batch statistics of BatchNormalization and the loss's average are over the
  whole batch, as in the reference. The global batch must divide by the device count.
- torch: not supported. Keras 3's ``fit`` has no multi-device mode on the torch backend
  (Keras's guide wraps a custom loop in ``DistributedDataParallel`` under ``torchrun``);
  train on one device, or use the TensorFlow or JAX backend for several.

Build, compile and fit the model inside the ``with`` block::

    with data_parallel() as strategy:
        model = synchronize_batchnorm(keras_drn.DRNSegmenter("drn_d_105", 19))
        compile_segmenter(model, 19)
        model.fit(train, epochs=500)  # batch size = the global batch (reference: 16)
"""

import contextlib

import keras

SUPPORTED_BACKENDS = ("tensorflow", "jax")
# One MirroredStrategy per device set and process. A second strategy over the same devices
# numbers its collective ops from the same keys, and TensorFlow's collective runtime
# (2.21) remembers the first one's shapes: "Shape mismatch in the collective instance
# 100 ..." as soon as the two run different all-reduces (say with and without synchronized
# BatchNormalization).
_MIRRORED = {}


def _unsupported(what):
    return NotImplementedError(
        f"{what} is not supported on the {keras.backend.backend()!r} backend: Keras's fit "
        f"has no multi-device mode there (torchrun / DistributedDataParallel around fit is "
        f"not supported). Train on one device, or set KERAS_BACKEND to one of "
        f"{SUPPORTED_BACKENDS}."
    )


def _tensorflow_devices():
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


@contextlib.contextmanager
def data_parallel(devices=None):
    """Context in which models are built, compiled and trained data parallel.

    Args:
        devices: device names (TensorFlow: ``"/gpu:0"``, ``"/cpu:1"``; JAX: ``"gpu:0"``,
            ``"cpu:1"``), default all GPUs, or all (logical) CPUs when there is none.

    On TensorFlow leave ``jit_compile`` at ``"auto"`` (Keras turns XLA off under a
    ``tf.distribute`` strategy) or False: ``jit_compile=True`` fails under MirroredStrategy
    ("Trying to access resource ... located in device ...", seen on two CPUs).

    Yields:
        TensorFlow: the ``tf.distribute.MirroredStrategy`` (``num_replicas_in_sync``);
        JAX: the ``keras.distribution.DataParallel`` (``device_mesh.shape``).

    Raises:
        NotImplementedError: on the torch backend.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tuple(devices or _tensorflow_devices())
        if devices not in _MIRRORED:
            _MIRRORED[devices] = tf.distribute.MirroredStrategy(list(devices))
        with _MIRRORED[devices].scope():
            yield _MIRRORED[devices]
    elif backend == "jax":
        distribution = keras.distribution.DataParallel(devices=devices)
        with distribution.scope():
            yield distribution
    else:
        raise _unsupported("data_parallel")


def _batchnorm_layers(model):
    # Layer._flatten_layers is private, but it is the only way to reach the
    # BatchNormalization sublayers inside composite layers (DilatedResidualBlock,
    # AdaptiveBlurPool); Keras itself uses it to walk a model's layers.
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def synchronize_batchnorm(model):
    """Makes every BatchNormalization of ``model`` use statistics over the global batch.

    TensorFlow: sets ``synchronized=True`` on every BatchNormalization layer, top-level or
    inside composite layers such as ``DilatedResidualBlock``, in place (Keras 3's argument:
    mean and variance all-reduced over the replicas of the ``tf.distribute`` strategy at
    each training step; identical to ``False`` outside a strategy). A model-level
    ``clone_model`` with a ``clone_function`` would miss the sublayers of composite layers.
    Call it before ``compile`` (or compile again): compiled train steps are discarded.

    JAX: returns the model unchanged; under ``keras.distribution.DataParallel`` batch
    statistics are computed over the global (sharded) batch already.

    Saving: a saved ``.keras`` file records ``synchronized=True`` for the top-level
    BatchNormalization layers, and Keras refuses that argument on other backends: load it
    on TensorFlow, or save weights (``.weights.h5``), which load anywhere.

    Returns:
        ``model``.

    Raises:
        NotImplementedError: on the torch backend.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return model
    if backend != "tensorflow":
        raise _unsupported("synchronize_batchnorm")
    for layer in _batchnorm_layers(model):
        layer.synchronized = True
    model.train_function = model.test_function = model.predict_function = None
    return model
