"""A Conv2D whose dilated form runs as one native convolution on every backend.

Dilated convolutions are the core of Dilated Residual Networks (Yu, Koltun, Funkhouser,
CVPR 2017). Keras' ``Conv2D`` reaches TensorFlow through ``tf.nn.convolution``, which turns
every dilated convolution into ``SpaceToBatchND -> Conv2D -> BatchToSpaceND``: on CPU that
costs 20-25% of a dilated layer's forward time and ~10% of its backward (measured with
``tools/benchmark.py``; DRN-D-22 classification was 0.89x the reference PyTorch code because
of it). ``tf.nn.conv2d`` takes the dilation natively (oneDNN on CPU, cuDNN on GPU), so this
layer calls it directly (the fix proposed in keras-team/keras#17510, not merged; the slowness
is tensorflow/tensorflow#37883). It also gives LiteRT one dilated CONV_2D at any input size
(keras-team/keras#17450). JAX and PyTorch already dilate natively and use Keras' path.

TensorFlow's CPU kernels cannot compute the gradient of a natively dilated convolution without
oneDNN (``TF_ENABLE_ONEDNN_OPTS=0``, some ARM builds), nor in float16 even with it; a one-off
probe per dtype detects that and keeps Keras' space-to-batch path there.
"""

import functools

import keras
from keras import layers, ops

from keras_drn.layers.initializers import reference_conv_initializer


@functools.cache
def native_dilation_supported(dtype="float32"):
    """True if TensorFlow's CPU kernels differentiate natively dilated convolutions of
    ``dtype`` (oneDNN does for float32 and bfloat16, not for float16)."""
    import tensorflow as tf

    ones = functools.partial(tf.ones, dtype=dtype)
    common = {"strides": [1, 1, 1, 1], "padding": "SAME", "dilations": [1, 2, 2, 1]}
    with tf.init_scope(), tf.device("CPU:0"):
        try:
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=[1, 5, 5, 1], filter=ones((3, 3, 1, 1)),
                out_backprop=ones((1, 5, 5, 1)), **common
            )
            tf.raw_ops.Conv2DBackpropFilter(
                input=ones((1, 5, 5, 1)), filter_sizes=[3, 3, 1, 1],
                out_backprop=ones((1, 5, 5, 1)), **common
            )
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            return False
    return True


@keras.saving.register_keras_serializable(package="keras_drn")
class DilatedConv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` with the same arguments, weights and outputs; a dilated one runs
    as a single native convolution on TensorFlow (see the module docstring).

    Input shape: ``(batch, height, width, channels)`` (``channels_last``; ``channels_first``
    takes Keras' own path). Output shape: as ``Conv2D``.
    """

    def convolution_op(self, inputs, kernel):
        if (
            keras.backend.backend() == "tensorflow"
            and max(self.dilation_rate) > 1
            and self.data_format == "channels_last"
            and self.groups == 1  # Keras compiles grouped convs with XLA on CPU: keep that
            and native_dilation_supported(keras.backend.standardize_dtype(inputs.dtype))
        ):
            import tensorflow as tf

            return tf.nn.conv2d(
                inputs,
                kernel,
                strides=list(self.strides),
                padding=self.padding.upper(),
                dilations=list(self.dilation_rate),
            )
        return super().convolution_op(inputs, kernel)


def symmetric_padding(kernel_size, dilation=1):
    """The padding of PyTorch's ``Conv2d(..., padding=dilation * (k - 1) // 2)``, per side."""
    return dilation * (kernel_size - 1) // 2


def reference_conv(filters, kernel_size, strides=1, dilation=1, name=None, dtype=None):
    """The reference's bias-free ``Conv2d(k, stride, padding=dilation * (k - 1) // 2)`` as a
    ``DilatedConv2D`` (the reference's He fan-out initialisation).

    PyTorch pads symmetrically; Keras's "same" does too at stride 1 but pads (0, 1) at stride
    2 on even sizes. So a stride-2 conv is "valid" and needs ``pad_symmetric`` (or a
    ``ZeroPadding2D(symmetric_padding(k, dilation))`` layer) before it.
    Input ``(batch, height, width, channels)``; output ``(batch, ceil(height / strides),
    ceil(width / strides), filters)`` once padded.
    """
    return DilatedConv2D(
        filters,
        kernel_size,
        strides=strides,
        dilation_rate=dilation,
        padding="valid" if strides > 1 else "same",
        use_bias=False,
        kernel_initializer=reference_conv_initializer(),
        data_format="channels_last",
        dtype=dtype,
        name=name,
    )


def pad_symmetric(conv, x):
    """Applies ``conv`` (made by ``reference_conv``) with PyTorch's symmetric padding."""
    if conv.strides[0] > 1:
        pad = symmetric_padding(conv.kernel_size[0], conv.dilation_rate[0])
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return conv(x)
