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

Any map size (``fallback=True``, what keras_drn's models use): a ``SpaceToPhase`` then splits
by the largest divisor ``f`` of its factor that divides the height and width it sees when
traced (JAX traces with concrete shapes, PyTorch runs eagerly, TensorFlow knows them when the
input size is known); a size still unknown then (a TensorFlow graph or SavedModel traced with
``None`` dimensions) gives ``f = 1``: the map passes through unchanged. The layers of the run
adapt to that choice, read by the layer's name: ``PhaseToSpace(split=name)`` joins by ``f``,
and a ``DilatedConv2D(phase_splits=(name, ...))`` multiplies its dilation by the factor left
unsplit, ``factor / f``, so the run computes what the dilated layers compute on the full map
(the phase form of ``f`` for what it divides, dilation for the rest). No padding: padded
positions would enter batch-statistics BatchNormalization and the next convolution. The
choice is made in Python, once per trace, and kept per thread (``unsplit_factor``); a layer
of the run always runs after its ``SpaceToPhase`` in the same pass, since it consumes its
output.
"""

import threading

import keras
from keras import layers, ops

# Per thread: name of a fallback SpaceToPhase layer -> the part of its factor that its latest
# call (or shape inference on known sizes) left unsplit (module docstring).
_choices = threading.local()


def _check_factor(factor):
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise ValueError(f"factor must be a positive int; received factor={factor!r}.")
    return factor


def _static(size):
    return size if isinstance(size, int) else None


def _split_factor(factor, height, width):
    """The largest divisor of ``factor`` that divides both sizes; 1 when one is unknown."""
    height, width = _static(height), _static(width)
    if height is None or width is None:
        return 1
    return max(f for f in range(1, factor + 1)
               if factor % f == 0 and height % f == 0 and width % f == 0)


def _record(name, unsplit):
    if not hasattr(_choices, "unsplit"):
        _choices.unsplit = {}
    _choices.unsplit[name] = unsplit


def unsplit_factor(names):
    """The product, over the fallback ``SpaceToPhase`` layers named in ``names``, of the part
    of their factor that their latest call in this thread left unsplit (1: split fully, also
    for a name not called yet)."""
    unsplit = getattr(_choices, "unsplit", {})
    factor = 1
    for name in names:
        factor *= unsplit.get(name, 1)
    return factor


def _to_phase(inputs, p):
    """``(batch, H, W, C) -> (p * p * batch, H / p, W / p, C)``, sub-maps phase-major."""
    if p == 1:
        return inputs
    _, height, width, channels = ops.shape(inputs)
    x = ops.reshape(inputs, (-1, height // p, p, width // p, p, channels))
    x = ops.transpose(x, (2, 4, 0, 1, 3, 5))
    return ops.reshape(x, (-1, height // p, width // p, channels))


def _to_space(inputs, p):
    """``(p * p * batch, H, W, C) -> (batch, p * H, p * W, C)``, the inverse of ``_to_phase``."""
    if p == 1:
        return inputs
    _, height, width, channels = ops.shape(inputs)
    x = ops.reshape(inputs, (p, p, -1, height, width, channels))
    x = ops.transpose(x, (2, 3, 0, 4, 1, 5))
    return ops.reshape(x, (-1, height * p, width * p, channels))


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

    ``fallback=True``: any height and width; the layer splits by ``f``, the largest divisor of
    ``factor`` that divides both sizes when traced (1 where a size is unknown then: the map
    passes through), giving ``(f**2 * batch, height / f, width / f, channels)``. Layers that
    name this one (``PhaseToSpace(split=...)``, ``DilatedConv2D(phase_splits=...)``) follow
    that choice (module docstring). Without it a map the factor does not divide is refused.

    Example:
    >>> SpaceToPhase(2)(keras.ops.ones((3, 8, 6, 5))).shape
    (12, 4, 3, 5)
    >>> SpaceToPhase(4, fallback=True)(keras.ops.ones((3, 8, 6, 5))).shape
    (12, 4, 3, 5)
    """

    def __init__(self, factor, fallback=False, **kwargs):
        super().__init__(factor, **kwargs)
        self.fallback = bool(fallback)

    def _factor_for(self, height, width):
        """The factor this layer splits a ``height`` x ``width`` map by (recorded if it falls
        back)."""
        p = self.factor
        if self.fallback:
            f = _split_factor(p, height, width)
            _record(self.name, p // f)
            return f
        for size in (_static(height), _static(width)):
            if size is not None and size % p:
                raise ValueError(
                    f"Phase execution with factor {p} needs a feature map whose height and "
                    f"width are multiples of {p}; received a {height}x{width} map. Pass "
                    f"fallback=True to split by the largest divisor of {p} that divides both "
                    "(what keras_drn models do) or build the model with "
                    "dilation_strategy='direct'."
                )
        return p

    def call(self, inputs):
        shape = ops.shape(inputs)
        return _to_phase(inputs, self._factor_for(shape[1], shape[2]))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        if self.fallback and (height is None or width is None):
            return (None, None, None, channels)  # the factor is chosen when traced
        f = self._factor_for(height, width)
        return (
            None if batch is None else batch * f * f,
            None if height is None else height // f,
            None if width is None else width // f,
            channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update(fallback=self.fallback)
        return config


@keras.saving.register_keras_serializable(package="keras_drn")
class PhaseToSpace(_PhaseLayer):
    """Puts the ``factor * factor`` phase sub-maps stacked by ``SpaceToPhase(factor)`` back
    together.

    Input shape: ``(factor**2 * batch, height, width, channels)``. Output shape: ``(batch,
    factor * height, factor * width, channels)``.

    ``split``: the name of a ``SpaceToPhase(factor, fallback=True)`` layer; this one then joins
    by the factor that layer split by in its latest call (``f`` instead of ``factor`` above).

    Example:
    >>> PhaseToSpace(2)(SpaceToPhase(2)(keras.ops.ones((3, 8, 6, 5)))).shape
    (3, 8, 6, 5)
    """

    def __init__(self, factor, split=None, **kwargs):
        super().__init__(factor, **kwargs)
        self.split = split

    def _joined(self):
        if self.split is None:
            return self.factor
        return self.factor // unsplit_factor([self.split])

    def call(self, inputs):
        return _to_space(inputs, self._joined())

    def compute_output_shape(self, input_shape):
        p = self._joined()
        batch, height, width, channels = input_shape
        return (
            None if batch is None else batch // (p * p),
            None if height is None else height * p,
            None if width is None else width * p,
            channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update(split=self.split)
        return config
