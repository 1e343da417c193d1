"""Boundary Refinement: a residual block that sharpens a score map's object boundaries.

Peng, Zhang, Yu, Luo, Sun, "Large Kernel Matters -- Improve Semantic Segmentation by Global
Convolutional Network", CVPR 2017, section 3.2 and figure 2(c).
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_drn")
class BoundaryRefinement(layers.Layer):
    """BR block: ``S + conv3x3(ReLU(conv3x3(S)))`` on a score map ``S``, channels kept.

    Args:
        kernel_size: side of both convolutions (paper: 3).
        use_bias: give the convolutions a bias.

    Input shape: ``(batch, height, width, channels)``, typically ``channels`` = classes.
    Output shape: the same.

    Example:
    >>> BoundaryRefinement()(keras.ops.ones((1, 16, 16, 19))).shape
    (1, 16, 16, 19)
    """

    def __init__(self, kernel_size=3, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be a positive odd int; received kernel_size={kernel_size!r}."
            )
        self.kernel_size = kernel_size
        self.use_bias = use_bias

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "BoundaryRefinement needs a known channel count; received input shape "
                f"{tuple(input_shape)}."
            )

        def conv(name):
            layer = layers.Conv2D(
                channels,
                self.kernel_size,
                padding="same",
                use_bias=self.use_bias,
                data_format="channels_last",
                dtype=self.dtype_policy,
                name=name,
            )
            layer.build((None, None, None, channels))
            return layer

        self.conv1 = conv("conv1")
        self.conv2 = conv("conv2")

    def call(self, inputs):
        return inputs + self.conv2(ops.relu(self.conv1(inputs)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, use_bias=self.use_bias)
        return config
