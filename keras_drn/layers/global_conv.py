"""Global Convolutional Network block: large separable kernels for dense classification.

Peng, Zhang, Yu, Luo, Sun, "Large Kernel Matters -- Improve Semantic Segmentation by Global
Convolutional Network", CVPR 2017, section 3.2 and figure 2(b).
"""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="keras_drn")
class GlobalConvBlock(layers.Layer):
    """GCN block: ``conv(k x 1) -> conv(1 x k)`` plus ``conv(1 x k) -> conv(k x 1)``, summed.

    A ``k x k`` receptive field at ``O(2k)`` instead of ``O(k^2)`` cost. As in the paper there
    is no normalisation and no nonlinearity inside the block. Padding is "same" (symmetric,
    since ``k`` is odd), so the spatial size is kept.

    Args:
        filters: output channels (the number of classes, in the paper's framework).
        kernel_size: odd kernel length ``k``; the paper's default and best is 15.
        use_bias: give each conv a bias (public reimplementations do).

    Input shape: ``(batch, height, width, channels)``.
    Output shape: ``(batch, height, width, filters)``.

    Example:
    >>> GlobalConvBlock(21, kernel_size=7)(keras.ops.ones((1, 32, 40, 64))).shape
    (1, 32, 40, 21)
    """

    def __init__(self, filters, kernel_size=15, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive int; received filters={filters!r}.")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                "kernel_size must be a positive odd int so that padding stays symmetric; "
                f"received kernel_size={kernel_size!r}."
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.use_bias = use_bias
        k = kernel_size

        def conv(shape, name):
            return layers.Conv2D(
                filters,
                shape,
                padding="same",
                use_bias=use_bias,
                data_format="channels_last",
                dtype=self.dtype_policy,
                name=name,
            )

        self.left_1, self.left_2 = conv((k, 1), "left_1"), conv((1, k), "left_2")
        self.right_1, self.right_2 = conv((1, k), "right_1"), conv((k, 1), "right_2")

    def build(self, input_shape):
        channels = input_shape[-1]
        self.left_1.build((None, None, None, channels))
        self.left_2.build((None, None, None, self.filters))
        self.right_1.build((None, None, None, channels))
        self.right_2.build((None, None, None, self.filters))

    def call(self, inputs):
        return self.left_2(self.left_1(inputs)) + self.right_2(self.right_1(inputs))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, use_bias=self.use_bias)
        return config
