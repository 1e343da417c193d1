"""A Conv2D whose dilated form runs as one native convolution on every backend.

Dilated convolutions are the core of Dilated Residual Networks (Yu, Koltun, Funkhouser,
CVPR 2017). Keras' ``Conv2D`` reaches TensorFlow through ``tf.nn.convolution``, which turns
every dilated convolution into ``SpaceToBatchND -> Conv2D -> BatchToSpaceND``: on CPU that
costs a large part of a dilated layer's time (measured by ``tools/benchmark.py``; the numbers
are in the speed guide, docs/speed.md). ``tf.nn.conv2d`` takes the dilation natively (oneDNN on CPU, cuDNN on GPU), so this
layer calls it directly (the fix proposed in keras-team/keras#17510, not merged; the slowness
is tensorflow/tensorflow#37883). It also gives LiteRT one dilated CONV_2D at any input size
(keras-team/keras#17450). JAX and PyTorch already dilate natively and use Keras' path.

TensorFlow's CPU kernels cannot compute the gradient of a natively dilated convolution without
oneDNN (``TF_ENABLE_ONEDNN_OPTS=0``, some ARM builds), nor in float16 even with it; a one-off
probe per dtype detects that and keeps Keras' space-to-batch path there.

A batch of one image: oneDNN (TensorFlow on CPU) picks a slower convolution kernel for a batch
of 1 than for a batch of 2 with the same pixels (a 3x3 512->512 convolution of 1x64x128 against
2x64x64; ``brg_conv_fwd`` both times, so no setting selects the other; measured by
``tools/profile_onednn.py``). That is most of DRN-D-22's segmentation inference at 512x1024 (levels 6-8 are eight such convolutions). So on a
TensorFlow CPU, a batch of one image through a convolution with at least ``SPLIT_MIN_CHANNELS``
input and output channels runs as its top and bottom halves (each with the rows of padding its
kernel reads) stacked into a batch of 2: the same sums per output pixel, and the halves'
outputs reshape back into the image for free. Under 256 channels the split gained nothing.
Export graphs are traced without it
(``plain_convolutions``): a mobile or GPU runtime has no use for it.
"""

import contextlib
import contextvars
import functools

import keras
from keras import layers, ops

from keras_drn.layers.initializers import reference_conv_initializer
from keras_drn.layers.phase import unsplit_factor
from keras_drn.layers.platform import tensorflow_on_cpu

# Fewest input and output channels for which a single image's convolution is split in two
# (module docstring).
SPLIT_MIN_CHANNELS = 256

_split_rows = contextvars.ContextVar("keras_drn_split_rows", default=True)


@contextlib.contextmanager
def plain_convolutions():
    """Within this context every ``DilatedConv2D`` traces as one convolution, never split into
    halves (for export graphs; see the module docstring)."""
    token = _split_rows.set(False)
    try:
        yield
    finally:
        _split_rows.reset(token)


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

    ``phase_splits``: names of the ``SpaceToPhase(fallback=True)`` layers whose phase form
    this convolution runs in (``keras_drn.layers.phase``); its dilation is multiplied by the
    part of their factors they left unsplit in their latest call (1 when they split fully), so
    it computes the dilated convolution of the full map whichever factor they chose.

    Input shape: ``(batch, height, width, channels)`` (``channels_last``; ``channels_first``
    takes Keras' own path). Output shape: as ``Conv2D``.
    """

    def __init__(self, *args, phase_splits=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.phase_splits = tuple(phase_splits)

    def _dilation(self):
        """The dilation this call runs at: ``dilation_rate`` times the unsplit factor."""
        unsplit = unsplit_factor(self.phase_splits)
        return tuple(d * unsplit for d in self.dilation_rate)

    def convolution_op(self, inputs, kernel):
        dilation = self._dilation()
        if (
            keras.backend.backend() != "tensorflow"
            or self.data_format != "channels_last"
            or self.groups != 1  # Keras compiles grouped convs with XLA on CPU: keep that
        ):
            return self._keras_convolution(inputs, kernel, dilation)
        dilated = max(dilation) > 1
        if dilated and not native_dilation_supported(
                keras.backend.standardize_dtype(inputs.dtype)):
            return self._keras_convolution(inputs, kernel, dilation)
        if self._splits_rows(inputs, kernel):
            return split_rows_convolution(inputs, kernel, dilation)
        if not dilated:
            return self._keras_convolution(inputs, kernel, dilation)
        import tensorflow as tf

        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=list(self.strides),
            padding=self.padding.upper(),
            dilations=list(dilation),
        )

    def _keras_convolution(self, inputs, kernel, dilation):
        """``Conv2D.convolution_op`` at ``dilation``."""
        return ops.conv(inputs, kernel, strides=list(self.strides), padding=self.padding,
                        dilation_rate=dilation, data_format=self.data_format)

    def _splits_rows(self, inputs, kernel):
        """Whether this call runs as two half-images (module docstring)."""
        return (
            _split_rows.get()
            and inputs.shape[0] == 1
            and tuple(self.strides) == (1, 1)
            and self.padding == "same"
            and all(size % 2 == 1 for size in self.kernel_size)
            and min(kernel.shape[2], kernel.shape[3]) >= SPLIT_MIN_CHANNELS
            and tensorflow_on_cpu()
        )

    def get_config(self):
        config = super().get_config()
        if self.phase_splits:  # only then: configs of other convolutions stay as they were
            config.update(phase_splits=list(self.phase_splits))
        return config


def split_rows_convolution(inputs, kernel, dilation):
    """A stride-1 "same" convolution of one image ``(1, height, width, channels)`` run as its
    top and bottom halves stacked into a batch of 2 (TensorFlow only; module docstring).
    Returns ``(1, height, width, filters)``."""
    import tensorflow as tf

    pad_h = dilation[0] * (kernel.shape[0] - 1) // 2
    pad_w = dilation[1] * (kernel.shape[1] - 1) // 2
    height = tf.shape(inputs)[1]
    half = (height + 1) // 2  # an odd height gets one row of zeros below, cut off after
    x = tf.pad(inputs, [[0, 0], [pad_h, pad_h + 2 * half - height], [pad_w, pad_w], [0, 0]])
    halves = tf.concat([x[:, :half + 2 * pad_h], x[:, half:]], axis=0)
    y = tf.nn.conv2d(halves, kernel, strides=1, padding="VALID", dilations=list(dilation))
    # (2, half, width, filters) holds the rows of (1, 2 * half, width, filters) in order.
    y = tf.reshape(y, [1, 2 * half, tf.shape(y)[2], kernel.shape[3]])[:, :height]
    y.set_shape([1, inputs.shape[1], inputs.shape[2], kernel.shape[3]])
    return y


def symmetric_padding(kernel_size, dilation=1):
    """The padding of PyTorch's ``Conv2d(..., padding=dilation * (k - 1) // 2)``, per side."""
    return dilation * (kernel_size - 1) // 2


def reference_conv(filters, kernel_size, strides=1, dilation=1, name=None, dtype=None,
                   use_bias=False, phase_splits=()):
    """The reference's bias-free ``Conv2d(k, stride, padding=dilation * (k - 1) // 2)`` as a
    ``DilatedConv2D`` (the reference's He fan-out initialisation); ``use_bias=True`` adds a
    bias, zero-initialised (the form that absorbs a folded BatchNormalization);
    ``phase_splits`` as in ``DilatedConv2D``.

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
        use_bias=use_bias,
        kernel_initializer=reference_conv_initializer(),
        data_format="channels_last",
        dtype=dtype,
        name=name,
        phase_splits=phase_splits,
    )


def pad_symmetric(conv, x):
    """Applies ``conv`` (made by ``reference_conv``) with PyTorch's symmetric padding."""
    if conv.strides[0] > 1:
        pad = symmetric_padding(conv.kernel_size[0], conv.dilation_rate[0])
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return conv(x)
