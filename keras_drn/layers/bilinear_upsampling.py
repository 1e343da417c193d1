"""DRN's fixed bilinear upsampling of score maps, and cropping to a reference size.

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017, section 5 (segmentation);
the official ``segment.py`` upsamples class scores with a frozen ``ConvTranspose2d(classes,
classes, 16, stride=8, padding=4, groups=classes)`` filled with a bilinear kernel.
"""

import keras
import numpy as np
from keras import layers, ops


def _center(factor):
    """The centre ``c`` of the reference's bilinear profile ``1 - |i / factor - c|``."""
    return (2 * factor - 1 - factor % 2) / (2.0 * factor)


def bilinear_kernel(factor):
    """The ``(2 * factor, 2 * factor)`` bilinear kernel of the reference's ``fill_up_weights``:
    the outer product of the profile ``1 - |i / factor - c|`` with ``c = (2 * factor - 1 -
    factor % 2) / (2 * factor)`` (for ``factor=8``: ``1 - |i / 8 - 0.9375|``, i = 0..15)."""
    profile = 1 - np.abs(np.arange(2 * factor) / factor - _center(factor))
    return np.outer(profile, profile).astype("float32")


def upsampling_matrix(factor, size, out_size, dtype):
    """The ``(out_size, size)`` matrix of the reference's transposed convolution along one axis
    (stride ``factor``, the ``bilinear_kernel`` profile, padding ``factor // 2``), for the first
    ``out_size <= factor * size`` outputs: entry ``(o, i)`` is the profile at ``o + factor // 2
    - factor * i`` where that is a tap of the kernel, else 0. ``size`` may be symbolic."""
    tap = (ops.arange(out_size, dtype="int32")[:, None] + factor // 2
           - factor * ops.arange(size, dtype="int32")[None, :])
    weight = 1 - ops.abs(ops.cast(tap, "float32") / factor - _center(factor))
    inside = ops.logical_and(tap >= 0, tap < 2 * factor)
    return ops.cast(ops.where(inside, weight, 0.0), dtype)


def _smaller(a, b):
    # Python ints where the shapes are static (JAX traces need a concrete size for arange).
    return min(a, b) if isinstance(a, int) and isinstance(b, int) else ops.minimum(a, b)


def resize_bilinear(images, size):
    """``keras.ops.image.resize(images, size, "bilinear")`` that also takes symbolic sizes.

    The TensorFlow backend is called directly because ``ops.image.resize`` checks
    ``size[0] <= 0`` in Python, which raises for the symbolic sizes of a graph traced with
    dynamic height and width (``model.export`` of an any-size model). Same op, same values.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.image.resize(images, size, method="bilinear", antialias=False)
    return ops.image.resize(images, size, interpolation="bilinear")


@keras.saving.register_keras_serializable(package="keras_drn")
class BilinearUpsampling(layers.Layer):
    """Fixed bilinear transposed convolution (``factor`` x), applied to each channel alone.

    Equal to the reference's frozen ``ConvTranspose2d(C, C, 2 * factor, stride=factor,
    padding=factor // 2, groups=C)`` (output ``factor * h``), then cropped to the size of the
    optional second input (the image), so a 500-pixel side comes back as 500, not 504.
    The kernel is separable, so it runs as two small matrix products, one per axis
    (``upsampling_matrix``; the rows and columns a crop drops are never computed). Written by
    hand because the direct form, a one-channel transposed convolution per class (the channels
    folded into the batch), has no fast kernel on CPU: in a DRN-D-22 bfloat16 training step its
    gradient took most of the step in oneDNN. No weights.

    Call: ``layer(scores)`` or ``layer([scores, reference])``.
    Input shape: ``(batch, h, w, C)``. Output shape: ``(batch, factor * h, factor * w, C)``,
    or the reference's height and width.
    """

    def __init__(self, factor=8, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(factor, int) or factor < 2 or factor % 2:
            raise ValueError(f"factor must be an even int >= 2; received factor={factor!r}.")
        self.factor = factor

    def call(self, inputs):
        scores, reference = (inputs, None) if not isinstance(inputs, (list, tuple)) else inputs
        shape = ops.shape(scores)
        up_h, up_w = self.factor * shape[1], self.factor * shape[2]
        if reference is not None:
            ref_shape = ops.shape(reference)
            up_h, up_w = _smaller(up_h, ref_shape[1]), _smaller(up_w, ref_shape[2])
        rows = upsampling_matrix(self.factor, shape[1], up_h, scores.dtype)
        columns = upsampling_matrix(self.factor, shape[2], up_w, scores.dtype)
        # The narrow axis first: (b, h, w, c) -> (b, h, W, c) -> (b, H, W, c).
        x = ops.einsum("Jj,bijc->biJc", columns, scores)
        return ops.einsum("Ii,biJc->bIJc", rows, x)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            scores, reference = input_shape
            return (scores[0], reference[1], reference[2], scores[3])
        up = [None if d is None else d * self.factor for d in input_shape[1:3]]
        return (input_shape[0], *up, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


@keras.saving.register_keras_serializable(package="keras_drn")
class ResizeLike(layers.Layer):
    """Brings a map to the height and width of a reference map: crop (when it is at least as
    large, as after ``x2`` transposed convolutions of ceil-sized maps) or bilinear resize.

    Call: ``layer([x, reference])``. Output: ``(batch, ref_height, ref_width, x_channels)``.
    """

    def __init__(self, mode="crop", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("crop", "bilinear"):
            raise ValueError(f"mode must be 'crop' or 'bilinear'; received mode={mode!r}.")
        self.mode = mode

    def call(self, inputs):
        x, reference = inputs
        ref_shape = ops.shape(reference)
        if self.mode == "crop":
            return x[:, : ref_shape[1], : ref_shape[2], :]
        resized = resize_bilinear(ops.cast(x, "float32"), (ref_shape[1], ref_shape[2]))
        return ops.cast(resized, x.dtype)

    def compute_output_shape(self, input_shape):
        x, reference = input_shape
        return (x[0], reference[1], reference[2], x[3])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config


@keras.saving.register_keras_serializable(package="keras_drn")
class ResizeBy(layers.Layer):
    """Bilinear resizing by an integer factor: ``UpSampling2D(factor, interpolation=
    "bilinear")``, with the same values, that also works when height and width are dynamic in
    a traced TensorFlow graph (Keras's layer fails there, in ``model.predict`` at a second
    input size and in ``model.export``: "Using a symbolic tf.Tensor as a Python bool").

    Input shape: ``(batch, h, w, C)``. Output shape: ``(batch, factor * h, factor * w, C)``.
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be a positive int; received factor={factor!r}.")
        self.factor = factor

    def call(self, inputs):
        shape = ops.shape(inputs)
        size = (shape[1] * self.factor, shape[2] * self.factor)
        return ops.cast(resize_bilinear(ops.cast(inputs, "float32"), size), inputs.dtype)

    def compute_output_shape(self, input_shape):
        up = [None if d is None else d * self.factor for d in input_shape[1:3]]
        return (input_shape[0], *up, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config
