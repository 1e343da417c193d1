"""Phase form: a dilated level run as undilated convolutions on the phase sub-maps.

A stride-1 "same" convolution with dilation ``d = p * q`` on a map whose height and width are
multiples of ``p`` equals a convolution with dilation ``q`` applied to each of the ``p * p``
phase sub-maps ``x[:, i::p, j::p]`` (tap ``y + a * d`` of row ``y = p * y' + i`` is row
``y' + a * q`` of sub-map ``i``, and it falls outside the map exactly when that one falls
outside the sub-map, so "same" zero padding agrees too). Stacking the sub-maps into the batch
makes that one convolution. Per-position operations (BatchNormalization, whose batch
statistics then see the same set of values, ReLU, residual additions, 1x1 convolutions)
commute with the rearrangement, so a whole run of layers sharing a dilation can execute in
phase form with one ``SpaceToPhase`` at its start and one ``PhaseToSpace`` at its end. This
is the space-to-batch identity TensorFlow uses inside every dilated convolution, hoisted out
of the convolution so that a DRN level pays for it once (Yu, Koltun, Funkhouser, "Dilated
Residual Networks", CVPR 2017, sec. 2: levels 5-7 of DRN-C/D run at dilation 2, 4, 2). XLA
(JAX) has been measured to run dilated convolutions many times slower than undilated ones on
GPU (SPECS.md, section 5); cuDNN does not pay that penalty.

Both layers use ``keras.ops.reshape``/``transpose`` only, so they run on every backend; they
have no weights. The sub-maps go to the front of the batch, phase-major:
``(batch, H, W, C) -> (p * p * batch, H / p, W / p, C)``, sub-map ``(i, j)`` at batch
positions ``(i * p + j) * batch ...``. Applying ``SpaceToPhase`` twice (factor ``p`` then
``q``) gives the phase form of factor ``p * q`` up to the order of the sub-maps in the batch,
which no per-position operation or convolution sees; ``PhaseToSpace`` undoes each in reverse.
"""

import keras
from keras import layers, ops


def _check_factor(factor):
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be a positive int; received factor={factor!r}.")
    return factor


def _static(size):
    return size if isinstance(size, int) else None


class _PhaseLayer(layers.Layer):
    """What both rearrangements share: the factor, checked, and its config."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = _check_factor(factor)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


@keras.saving.register_keras_serializable(package="keras_drn")
class SpaceToPhase(_PhaseLayer):
    """Stacks the ``factor * factor`` phase sub-maps of a map into the batch.

    Input shape: ``(batch, height, width, channels)`` with height and width multiples of
    ``factor``. Output shape: ``(factor**2 * batch, height / factor, width / factor,
    channels)``; ``PhaseToSpace(factor)`` inverts it.

    Example:
    >>> SpaceToPhase(2)(keras.ops.ones((3, 8, 6, 5))).shape
    (12, 4, 3, 5)
    """

    def call(self, inputs):
        p = self.factor
        if p == 1:
            return inputs
        shape = ops.shape(inputs)
        height, width, channels = shape[1], shape[2], shape[3]
        for size in (_static(height), _static(width)):
            if size is not None and size % p:
                raise ValueError(
                    f"Phase execution with factor {p} needs a feature map whose height and "
                    f"width are multiples of {p}; received a {height}x{width} map. Build the "
                    "model with a fixed input_shape (levels of other sizes then run directly) "
                    "or with dilation_strategy='direct'."
                )
        x = ops.reshape(inputs, (-1, height // p, p, width // p, p, channels))
        x = ops.transpose(x, (2, 4, 0, 1, 3, 5))
        return ops.reshape(x, (-1, height // p, width // p, channels))

    def compute_output_shape(self, input_shape):
        p = self.factor
        batch, height, width, channels = input_shape
        return (
            None if batch is None else batch * p * p,
            None if height is None else height // p,
            None if width is None else width // p,
            channels,
        )


@keras.saving.register_keras_serializable(package="keras_drn")
class PhaseToSpace(_PhaseLayer):
    """Puts the ``factor * factor`` phase sub-maps stacked by ``SpaceToPhase(factor)`` back
    together.

    Input shape: ``(factor**2 * batch, height, width, channels)``. Output shape: ``(batch,
    factor * height, factor * width, channels)``.

    Example:
    >>> PhaseToSpace(2)(SpaceToPhase(2)(keras.ops.ones((3, 8, 6, 5)))).shape
    (3, 8, 6, 5)
    """

    def call(self, inputs):
        p = self.factor
        if p == 1:
            return inputs
        shape = ops.shape(inputs)
        height, width, channels = shape[1], shape[2], shape[3]
        x = ops.reshape(inputs, (p, p, -1, height, width, channels))
        x = ops.transpose(x, (2, 3, 0, 4, 1, 5))
        return ops.reshape(x, (-1, height * p, width * p, channels))

    def compute_output_shape(self, input_shape):
        p = self.factor
        batch, height, width, channels = input_shape
        return (
            None if batch is None else batch // (p * p),
            None if height is None else height * p,
            None if width is None else width * p,
            channels,
        )
