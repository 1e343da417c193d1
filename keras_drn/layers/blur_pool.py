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


def _folded_indices(size, before, after, mode):
    """Source indices of a ``reflect`` or ``symmetric`` padding of an axis of length ``size``
    (an int or a scalar tensor) by ``before`` and ``after``, reflecting again as often as the
    padding needs (NumPy's rule): ``reflect`` folds with period ``2 * (size - 1)`` (edge not
    repeated; a 1-pixel axis repeats its pixel), ``symmetric`` with period ``2 * size``."""
    index = ops.arange(-before, size + after, dtype="int32")
    if mode == "reflect":
        period = ops.maximum(2 * (size - 1), 1)
        folded = ops.mod(index, period)
        return ops.where(folded < size, folded, period - folded)
    folded = ops.mod(index, 2 * size)
    return ops.where(folded < size, folded, 2 * size - 1 - folded)


def pad_spatial(x, pads, mode="reflect"):
    """Pads the height and width of ``(batch, height, width, channels)`` by ``pads`` =
    ``((top, bottom), (left, right))``, at any size.

    ``"reflect"`` (``d c b | a b c d | c b a``) and ``"symmetric"`` (``c b a | a b c d | d c
    b``) reflect again where the padding is wider than the side allows (NumPy's and JAX's
    rule; a 1-pixel side repeats its pixel). Where the side allows a single reflection (more
    than the padding for reflect, at least the padding for symmetric) this is
    ``keras.ops.pad`` itself: TensorFlow's MirrorPad and torch's reflect pad refuse smaller
    sides, so those sides (and sides unknown until run time) are padded by gathering the
    reflected rows and columns instead, which gives the same values (as does symmetric
    padding on torch, whose Keras ``pad`` repeats the edge instead). ``"constant"`` pads with
    zeros.
    """
    spec = [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]
    if not any(pads[0]) and not any(pads[1]):
        return x  # nothing to pad (a 1x1 filter); torch's reflect pad refuses zero padding
    if mode == "constant":
        return ops.pad(x, spec)
    smallest = {"reflect": 1, "symmetric": 0}[mode]
    # Keras 3's torch backend pads "symmetric" as "replicate" (edge), which differs from
    # symmetric once a padding exceeds 1: on torch, symmetric is always gathered.
    native = mode == "reflect" or keras.backend.backend() != "torch"

    def single_reflection(side, pad):
        return native and side is not None and side >= max(pad) + smallest

    if all(single_reflection(x.shape[axis], pads[axis - 1]) for axis in (1, 2)):
        return ops.pad(x, spec, mode=mode)
    for axis in (1, 2):
        before, after = pads[axis - 1]
        if not before and not after:
            continue
        if single_reflection(x.shape[axis], pads[axis - 1]):
            axis_spec = [[0, 0]] * 4
            axis_spec[axis] = [before, after]
            x = ops.pad(x, axis_spec, mode=mode)
        else:
            indices = _folded_indices(ops.shape(x)[axis], before, after, mode)
            x = ops.take(x, indices, axis=axis)
    return x


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

    Input shape: ``(batch, height, width, channels)``, any height and width >= 1: where a
    side is too small for one reflection (below 3 for size 4 and 5, below 4 for 6 and 7)
    the padding reflects again (``pad_spatial``; NumPy's rule), and wherever one reflection
    fits the output is that of the plain reflect padding.
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
        x = pad_spatial(inputs, (self._pads, self._pads), mode=self.pad_mode)
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
