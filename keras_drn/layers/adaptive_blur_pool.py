"""Content-adaptive anti-aliasing: a predicted low-pass filter per position and channel group.

Zou, Xiao, Yu, Lee, "Delving Deeper into Anti-aliasing in ConvNets", BMVC 2020 (github
MaureenZOU/Adaptive-anti-Aliasing, ``Downsample_PASA_group_softmax``).
"""

import keras
from keras import layers, ops

from keras_drn.layers.blur_pool import pad_spatial
from keras_drn.layers.fused_batch_norm import FusedBatchNormalization
from keras_drn.layers.initializers import reference_conv_initializer

SOFTMAX_SCOPES = ("group", "all")


@keras.saving.register_keras_serializable(package="keras_drn")
class AdaptiveBlurPool(layers.Layer):
    """Content-adaptive low-pass filtering, then subsampling (Zou et al. 2020, section 3).

    A ``k x k`` convolution (no bias) of the reflect-padded input predicts ``groups * k * k``
    logits per position; BatchNormalization and a softmax turn them into one ``k x k`` filter
    per position and channel group. Each output value is the filter-weighted sum of the
    reflect-padded ``k x k`` neighbourhood of the input. Channels are grouped in contiguous
    blocks: channel ``c`` uses the filter of group ``c // (channels / groups)``.

    Filter logits are laid out as the reference lays them out: channel ``g * k * k + i * k + j``
    is group ``g``, kernel row ``i``, column ``j``. The weights are, in order, the conv kernel
    ``(k, k, channels, groups * k * k)`` and the BatchNormalization (epsilon 1e-5) over the
    ``groups * k * k`` logits, so the reference's weights load by transposition (OIHW -> HWIO).

    ``softmax_scope="group"`` (default) normalises each group's ``k * k`` weights (each filter
    sums to 1: a proper low-pass filter, as the paper describes); ``"all"`` takes one softmax
    over all ``groups * k * k`` logits, as the released code does, which reproduces its
    outputs exactly.

    Unlike the reference, which computes filters and sums at every input position and then
    subsamples, this layer computes them only at the kept positions (every ``strides``-th row
    and column from 0): ``strides**2`` times less work, the same outputs in inference. In
    training, BatchNormalization's batch statistics are taken over the kept positions only,
    a ``1 / strides**2`` subsample of the reference's.

    Args:
        kernel_size: odd filter side ``k`` (the paper's best: 3).
        strides: subsampling factor (1 filters without subsampling).
        groups: number of channel groups sharing a filter; must divide the channel count
            (the paper's best: 8).
        softmax_scope: ``"group"`` or ``"all"``, see above.
        epsilon, momentum: BatchNormalization settings (PyTorch defaults).
        batch_norm: ``True`` (default): the logits' BatchNormalization, as in the paper.
            ``False``: the inference form that ``keras_drn.fold_batch_norm`` builds, the
            BatchNormalization folded into the convolution: the convolution has a bias and a
            weightless ``keras.layers.Identity`` named ``bn`` takes the BatchNormalization's
            place. For inference and export of trained weights, not for training from scratch.

    Input shape: ``(batch, height, width, channels)``, any height and width >= 1: a side not
    larger than ``kernel_size // 2`` is padded by repeated reflection
    (``keras_drn.layers.blur_pool.pad_spatial``; a 1-pixel side repeats its pixel), every
    other side by the plain reflect padding.
    Output shape: ``(batch, ceil(height / strides), ceil(width / strides), channels)``.

    Example:
    >>> AdaptiveBlurPool(kernel_size=3, groups=8)(keras.ops.ones((2, 9, 10, 16))).shape
    (2, 5, 5, 16)
    """

    def __init__(
        self,
        kernel_size=3,
        strides=2,
        groups=8,
        softmax_scope="group",
        epsilon=1e-5,
        momentum=0.9,
        batch_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                "kernel_size must be a positive odd int (the reference pads k // 2 on each "
                f"side); received kernel_size={kernel_size!r}."
            )
        if not isinstance(strides, int) or strides < 1:
            raise ValueError(f"strides must be a positive int; received strides={strides!r}.")
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive int; received groups={groups!r}.")
        if softmax_scope not in SOFTMAX_SCOPES:
            raise ValueError(
                f"softmax_scope must be one of {SOFTMAX_SCOPES}; received {softmax_scope!r}."
            )
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be True or False; received {batch_norm!r}.")
        self.kernel_size = kernel_size
        self.strides = strides
        self.groups = groups
        self.softmax_scope = softmax_scope
        self.epsilon = epsilon
        self.momentum = momentum
        self.batch_norm = batch_norm
        taps = groups * kernel_size * kernel_size
        self.conv = layers.Conv2D(
            taps,
            kernel_size,
            strides=strides,
            padding="valid",
            use_bias=not batch_norm,
            kernel_initializer=reference_conv_initializer(),
            data_format="channels_last",
            dtype=self.dtype_policy,
            name="conv",
        )
        if batch_norm:
            self.bn = FusedBatchNormalization(
                epsilon=epsilon, momentum=momentum, dtype=self.dtype_policy, name="bn"
            )
        else:
            self.bn = layers.Identity(dtype=self.dtype_policy, name="bn")

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"AdaptiveBlurPool: the channel count ({channels}) must be known and divisible "
                f"by groups ({self.groups}); pass a groups value that divides it."
            )
        self.channels = channels
        self.conv.build((None, None, None, channels))
        self.bn.build((None, None, None, self.groups * self.kernel_size**2))

    def call(self, inputs, training=None):
        k, g = self.kernel_size, self.groups
        pad = k // 2
        x = pad_spatial(inputs, ((pad, pad), (pad, pad)), mode="reflect")
        # Filter logits at the kept positions only: a strided valid conv on the padded input.
        logits = self.bn(self.conv(x), training=training)
        shape = ops.shape(logits)
        out_h, out_w = shape[1], shape[2]
        logits = ops.cast(logits, "float32")  # softmax in float32 under mixed precision
        if self.softmax_scope == "all":
            weights = ops.reshape(ops.softmax(logits, axis=-1), (-1, out_h, out_w, g, k * k))
        else:
            weights = ops.softmax(ops.reshape(logits, (-1, out_h, out_w, g, k * k)), axis=-1)
        weights = ops.cast(weights, inputs.dtype)
        out = None
        # One unstack, not k * k index slices: each slice's gradient would be a full-size
        # scatter (TensorFlow's StridedSliceGrad).
        for weight, patch in zip(ops.unstack(weights, axis=-1), self._taps(x, out_h, out_w)):
            term = patch * weight[..., None]
            out = term if out is None else out + term
        return ops.reshape(out, (-1, out_h, out_w, self.channels))

    def _taps(self, x, out_h, out_w):
        """The ``k * k`` input windows at the kept positions, each ``(batch, out_h, out_w,
        groups, channels / groups)``: window ``(i, j)`` is ``x[:, i::s, j::s]`` cropped.

        The padded input is split once into its ``s * s`` phases (rows and columns modulo
        ``s``, a reshape and a transpose) and each window is a contiguous slice of a phase.
        Slicing ``x[:, i::s, j::s]`` directly is as fast forward, but its gradient scatters
        into a full-size zero tensor once per window; through the phases the backward pass
        pads phase-sized tensors and transposes once (``tools/benchmark_blurpool.py``: 2.5x
        faster forward plus backward on TensorFlow).
        """
        k, s, g = self.kernel_size, self.strides, self.groups
        c = self.channels // g
        reach = (k - 1) // s  # how far a window reaches past its phase's output grid
        rows, cols = out_h + reach, out_w + reach
        window = (ops.shape(x)[0], out_h, out_w, g, c)
        if s == 1:
            phases = [ops.reshape(x, (-1, rows, cols, g, c))]
        else:
            # Up to s - 1 zero rows and columns complete the last phase row; no window reads
            # them.
            x = ops.pad(x, [[0, 0], [0, s - 1], [0, s - 1], [0, 0]])
            x = ops.slice(x, (0, 0, 0, 0), (window[0], rows * s, cols * s, self.channels))
            x = ops.reshape(x, (-1, rows, s, cols, s, g, c))
            x = ops.transpose(x, (2, 4, 0, 1, 3, 5, 6))  # (s, s, batch, rows, cols, g, c)
            phases = ops.unstack(ops.reshape(x, (s * s, -1, rows, cols, g, c)), axis=0)
        for i in range(k):
            for j in range(k):
                # ops.slice, whose gradient is a pad (a Python slice's is TensorFlow's slower
                # StridedSliceGrad).
                yield ops.slice(phases[(i % s) * s + j % s], (0, i // s, j // s, 0, 0), window)

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            strides=self.strides,
            groups=self.groups,
            softmax_scope=self.softmax_scope,
            epsilon=self.epsilon,
            momentum=self.momentum,
            batch_norm=self.batch_norm,
        )
        return config
