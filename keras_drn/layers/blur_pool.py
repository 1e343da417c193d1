"""Fixed binomial low-pass filtering before subsampling.

Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019 (github
adobe/antialiased-cnns, ``Downsample``/``BlurPool``): the fixed-filter baseline that
``AdaptiveBlurPool`` (Zou et al., BMVC 2020) improves on.
"""

import math

import keras
import numpy as np
from keras import layers, ops

PAD_MODES = ("reflect", "symmetric", "constant")


def binomial_filter(size):
    """The normalised 2-D binomial filter of a side ``size`` (1 to 7), as a numpy array."""
    row = np.array([math.comb(size - 1, i) for i in range(size)], dtype="float64")
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


@keras.saving.register_keras_serializable(package="keras_drn")
class BlurPool(layers.Layer):
    """Depthwise binomial blur with stride (anti-aliased downsampling, Zhang 2019).

    Pads each spatial axis by ``((size - 1) // 2, ceil((size - 1) / 2))`` (reflect by
    default; ``(1, 2)`` for size 4), convolves every channel with the normalised outer
    product of the binomial row ``[1]``, ``[1, 1]``, ``[1, 2, 1]``, ``[1, 3, 3, 1]``, ...,
    and keeps every ``strides``-th row and column starting at 0. ``filter_size=1`` is plain
    subsampling. The layer has no weights.

    Args:
        filter_size: side of the binomial filter, 1 to 7.
        strides: subsampling factor (1 blurs without subsampling).
        pad_mode: ``"reflect"`` (default, as the reference), ``"symmetric"`` or
            ``"constant"`` (zeros).

    Input shape: ``(batch, height, width, channels)``; reflect padding needs height and
    width larger than the padding (at least 3 for size 4).
    Output shape: ``(batch, ceil(height / strides), ceil(width / strides), channels)``.

    Example:
    >>> BlurPool(filter_size=4)(keras.ops.ones((2, 9, 10, 8))).shape
    (2, 5, 5, 8)
    """

    def __init__(self, filter_size=4, strides=2, pad_mode="reflect", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filter_size, int) or not 1 <= filter_size <= 7:
            raise ValueError(
                f"filter_size must be an int from 1 to 7; received filter_size={filter_size!r}."
            )
        if not isinstance(strides, int) or strides < 1:
            raise ValueError(f"strides must be a positive int; received strides={strides!r}.")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}; received {pad_mode!r}.")
        self.filter_size = filter_size
        self.strides = strides
        self.pad_mode = pad_mode
        self._pads = ((filter_size - 1) // 2, filter_size // 2)
        self._kernel = binomial_filter(filter_size)

    def build(self, input_shape):
        self.channels = input_shape[-1]
        if self.channels is None:
            raise ValueError(
                f"BlurPool needs a known channel count; received input shape {input_shape}."
            )

    def call(self, inputs):
        if self.filter_size == 1:
            return inputs[:, :: self.strides, :: self.strides, :]
        pads = [[0, 0], list(self._pads), list(self._pads), [0, 0]]
        x = ops.pad(inputs, pads, mode=self.pad_mode)
        kernel = np.tile(self._kernel[:, :, None, None], (1, 1, self.channels, 1))
        kernel = ops.convert_to_tensor(kernel, dtype=inputs.dtype)
        return ops.depthwise_conv(x, kernel, strides=self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(
            filter_size=self.filter_size, strides=self.strides, pad_mode=self.pad_mode
        )
        return config
