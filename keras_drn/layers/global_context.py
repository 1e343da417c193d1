"""ParseNet's global context: image-level features appended to every position.

Liu, Rabinovich, Berg, "ParseNet: Looking Wider to See Better", 2015, sections 3.1-3.3
(early fusion: global average pooling, L2 normalisation with a learned scale on both the
local and the global features, "unpooling" by tiling, concatenation).
"""

import keras
from keras import layers, ops

from keras_drn.layers.l2_norm_scale import L2NormScale


@keras.saving.register_keras_serializable(package="keras_drn")
class GlobalContext(layers.Layer):
    """``concat(L2NormScale(x), tile(L2NormScale(mean_hw(x))))`` over channels.

    Args:
        scale_init: initial scale of both L2 normalisations (see ``L2NormScale``).

    Input shape: ``(batch, height, width, C)``.
    Output shape: ``(batch, height, width, 2 * C)``: local features, then the global ones.
    """

    def __init__(self, scale_init=20.0, **kwargs):
        super().__init__(**kwargs)
        self.scale_init = scale_init
        self.local_norm = L2NormScale(scale_init, dtype=self.dtype_policy, name="local_norm")
        self.global_norm = L2NormScale(scale_init, dtype=self.dtype_policy, name="global_norm")

    def build(self, input_shape):
        self.local_norm.build(input_shape)
        self.global_norm.build((input_shape[0], 1, 1, input_shape[-1]))

    def call(self, inputs):
        local = self.local_norm(inputs)
        pooled = ops.mean(ops.cast(inputs, "float32"), axis=(1, 2), keepdims=True)
        context = self.global_norm(ops.cast(pooled, inputs.dtype))
        context = ops.broadcast_to(context, ops.shape(local))
        return ops.concatenate([local, context], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else 2 * input_shape[-1]
        return (*input_shape[:-1], channels)

    def get_config(self):
        config = super().get_config()
        config.update(scale_init=self.scale_init)
        return config
