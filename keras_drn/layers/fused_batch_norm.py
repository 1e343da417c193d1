"""BatchNormalization that runs TensorFlow's fused kernel on a TensorFlow CPU.

Ioffe and Szegedy, "Batch Normalization", ICML 2015; the DRN reference normalises after every
convolution (github fyu/drn, ``nn.BatchNorm2d``), so this op runs ~25 times per DRN-D-22 step.

Written here because Keras 3 lacks it: its ``keras.layers.BatchNormalization`` builds the batch
statistics and the normalisation from separate ops (``tf.nn.moments``,
``tf.nn.batch_normalization``, in float32 around bfloat16/float16 inputs), each differentiated
on its own, where Keras 2 called TensorFlow's fused kernel (``fused=True``, FusedBatchNormV3:
statistics, normalisation and gradient in one oneDNN op that reads bfloat16 with float32
statistics). ``tools/benchmark.py --batch-norm-baseline`` times a model against the same model
traced on Keras's path (``keras_batch_norm()``) in one process; README, "Speed".
"""

import contextlib
import contextvars

import keras
from keras import layers

from keras_drn.layers.platform import tensorflow_on_cpu

_FUSABLE_DTYPES = ("float32", "bfloat16")  # float16: Eigen fallback, unmeasured
_KERAS_PATH = contextvars.ContextVar("keras_drn_keras_batch_norm", default=False)


@contextlib.contextmanager
def keras_batch_norm():
    """Within it, ``FusedBatchNormalization`` calls (and functions traced then) take Keras's
    own path: a baseline for benchmarks, or a check when a result is in doubt."""
    token = _KERAS_PATH.set(True)
    try:
        yield
    finally:
        _KERAS_PATH.reset(token)


@keras.saving.register_keras_serializable(package="keras_drn")
class FusedBatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (a subclass: same arguments, variables, config and
    results within float rounding) that runs FusedBatchNormV3 on a TensorFlow CPU for float32
    and bfloat16 inputs.

    The moving statistics follow Keras's rule (``moving = momentum * moving + (1 - momentum) *
    batch``, with the biased batch variance). Other backends, TensorFlow on a GPU, float16, masks,
    ``renorm``, ``synchronized`` statistics and inputs that are not ``(batch, height, width,
    channels)`` with ``axis=-1`` take Keras's own path.

    Input shape: any; the fused path takes ``(batch, height, width, channels)``.
    Output shape: the input's.
    """

    def _fusable(self, inputs, mask):
        return (
            not _KERAS_PATH.get()
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSABLE_DTYPES
            and tensorflow_on_cpu()
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        if not (training and self.trainable):
            return tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, data_format="NHWC", is_training=False,
            )[0]
        outputs, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=tf.zeros([0]), variance=tf.zeros([0]),
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True,
        )[:3]
        # The kernel returns the Bessel-corrected variance (n / (n - 1)); Keras averages the
        # biased one, which the normalisation itself uses.
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, "float32")
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(
            self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs
