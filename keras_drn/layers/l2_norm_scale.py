"""L2 normalisation across channels with a learned per-channel scale.

Liu, Rabinovich, Berg, "ParseNet: Looking Wider to See Better", 2015, section 3.3 (the same
layer as Caffe's ``Normalize``, used again by SSD).
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_drn")
class L2NormScale(layers.Layer):
    """``y_c = gamma_c * x_c / sqrt(sum_c x_c^2 + epsilon)`` at every position.

    Normalised features are small (unit norm over possibly thousands of channels), which
    stalls learning when they are fused with other features; the learned per-channel scale
    ``gamma`` (ParseNet section 3.3) fixes that. It starts at ``scale_init`` (SSD uses 20,
    ParseNet reimplementations 10 to 20). The normalisation runs in float32 under mixed
    precision: float16 squares overflow past 256 and ``epsilon`` underflows.

    Args:
        scale_init: initial value of every ``gamma_c``.
        epsilon: added to the sum of squares inside the square root (Caffe: 1e-10).

    Input shape: ``(batch, ..., channels)``. Output shape: the same.
    Weights: ``scale``, shape ``(channels,)``.

    Example:
    >>> L2NormScale(scale_init=10.0)(keras.ops.ones((1, 4, 4, 8))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, scale_init=20.0, epsilon=1e-10, **kwargs):
        super().__init__(**kwargs)
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0; received epsilon={epsilon!r}.")
        self.scale_init = float(scale_init)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"L2NormScale needs a known channel count; received input shape {input_shape}."
            )
        self.scale = self.add_weight(
            name="scale",
            shape=(channels,),
            initializer=keras.initializers.Constant(self.scale_init),
        )

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        y = x / norm * ops.cast(self.scale, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(scale_init=self.scale_init, epsilon=self.epsilon)
        return config
