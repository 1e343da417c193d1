"""The residual blocks of Dilated Residual Networks.

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017, section 2 and 4 (DRN-A/C/D).
The semantics follow the official code (github fyu/drn, ``drn.py``: ``BasicBlock`` and
``Bottleneck``), so its checkpoints load by transposition and give its numbers.
"""

import keras
from keras import layers, ops

from keras_drn import constants
from keras_drn.layers.adaptive_blur_pool import AdaptiveBlurPool
from keras_drn.layers.blur_pool import BlurPool
from keras_drn.layers.dilated_conv import pad_symmetric, reference_conv
from keras_drn.layers.fused_batch_norm import FusedBatchNormalization

BLOCKS = {"basic": 1, "bottleneck": 4}  # block kind -> channel expansion
ANTI_ALIAS = constants.ANTI_ALIAS  # None, "blur", "adaptive"
# Anti-aliasing filter defaults: BlurPool filter 4 (Zhang 2019's published ImageNet setting),
# AdaptiveBlurPool k=3 with 8 groups (Zou et al. 2020's best ImageNet setting).
DEFAULT_FILTER_SIZE = {"blur": 4, "adaptive": 3}


def make_anti_alias(kind, channels, filter_size=None, groups=8, name=None, dtype=None,
                    batch_norm=True):
    """A stride-2 low-pass downsampling layer: ``BlurPool`` or ``AdaptiveBlurPool`` (with
    ``batch_norm``, see ``AdaptiveBlurPool``)."""
    if kind not in ANTI_ALIAS[1:]:
        raise ValueError(
            f"anti_alias must be one of {ANTI_ALIAS}; received anti_alias={kind!r}."
        )
    size = filter_size or DEFAULT_FILTER_SIZE[kind]
    if kind == "blur":
        return BlurPool(filter_size=size, strides=2, name=name, dtype=dtype)
    return AdaptiveBlurPool(
        kernel_size=size, strides=2, groups=min(groups, channels), batch_norm=batch_norm,
        name=name, dtype=dtype,
    )


def _pair(value, what):
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"{what} must be a positive int or a pair of them; received {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="keras_drn")
class DilatedResidualBlock(layers.Layer):
    """DRN residual block: ``BasicBlock`` or ``Bottleneck`` with dilation (DRN paper, sec. 2).

    ``block="basic"``: conv3x3(stride, dilation d1)-BN-ReLU-conv3x3(dilation d2)-BN,
    ``+ shortcut`` when ``residual``, then ReLU (also without the residual, as in the
    reference: DRN-C's degridding levels 7-8 use ``residual=False``).

    ``block="bottleneck"``: conv1x1(filters)-BN-ReLU-conv3x3(filters, stride, dilation d2)-
    BN-ReLU-conv1x1(4 * filters)-BN, ``+ shortcut``, ReLU. As in the reference the first
    dilation is unused.

    The shortcut is the identity, or a 1x1 conv (stride) + BN projection named
    ``downsample_conv``/``downsample_bn`` when the stride is not 1 or the channel count
    changes. Convolutions have no bias (unless ``batch_norm=False``). Padding is symmetric
    (PyTorch semantics): stride-2 convolutions pad explicitly, since TensorFlow's "same" pads
    (0, 1) at even sizes.
    BatchNormalization uses PyTorch's epsilon 1e-5 and momentum 0.1 (Keras momentum 0.9).

    With ``anti_alias`` ("blur" or "adaptive") and stride 2, strided convolutions run at
    stride 1 and a low-pass filter with stride 2 follows, as in the anti-aliased ResNets of
    Zhang (2019) and Zou et al. (2020): after the first conv's ReLU (basic), after the 3x3
    conv's ReLU (bottleneck), and before the 1x1 projection of the shortcut.

    Args:
        filters: number of planes; the block outputs ``filters * expansion`` channels
            (expansion 1 for basic, 4 for bottleneck).
        block: ``"basic"`` or ``"bottleneck"``.
        strides: 1 or 2.
        dilation: int or ``(d1, d2)`` pair: dilation of the first and second 3x3 conv.
        residual: add the shortcut (``False`` for DRN-C's degridding levels).
        anti_alias: ``None``, ``"blur"`` (``BlurPool``) or ``"adaptive"``
            (``AdaptiveBlurPool``); only used at stride 2.
        anti_alias_size: filter size of the anti-aliasing layer (default 4 for blur, 3 for
            adaptive).
        anti_alias_groups: channel groups of ``AdaptiveBlurPool`` (default 8).
        epsilon, momentum: BatchNormalization settings (PyTorch defaults).
        batch_norm: ``True`` (default): each convolution is followed by BatchNormalization,
            as in the reference. ``False``: the inference form that
            ``keras_drn.fold_batch_norm`` builds, each BatchNormalization folded into the
            convolution before it: the convolutions have a bias, and a weightless
            ``keras.layers.Identity`` takes each BatchNormalization's place and name (also
            inside an ``AdaptiveBlurPool``). For inference and export of trained weights;
            trained from scratch it would be a DRN without normalisation.
        phase_splits: names of the ``SpaceToPhase(fallback=True)`` layers whose phase form the
            block runs in, passed to its 3x3 convolutions (``DilatedConv2D``): ``dilation``
            is then the dilation on the phase sub-maps, scaled back when they split less.

    Input shape: ``(batch, height, width, channels)``.
    Output shape: ``(batch, ceil(height / strides), ceil(width / strides),
    filters * expansion)``.

    Example:
    >>> block = DilatedResidualBlock(64, strides=2)
    >>> block(keras.ops.ones((1, 57, 57, 32))).shape
    (1, 29, 29, 64)
    """

    def __init__(
        self,
        filters,
        block="basic",
        strides=1,
        dilation=1,
        residual=True,
        anti_alias=None,
        anti_alias_size=None,
        anti_alias_groups=8,
        epsilon=1e-5,
        momentum=0.9,
        batch_norm=True,
        phase_splits=(),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if block not in BLOCKS:
            raise ValueError(
                f"block must be one of {sorted(BLOCKS)}; received block={block!r}."
            )
        if strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2; received strides={strides!r}.")
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be a positive int; received filters={filters!r}.")
        if anti_alias not in ANTI_ALIAS:
            raise ValueError(
                f"anti_alias must be one of {ANTI_ALIAS}; received anti_alias={anti_alias!r}."
            )
        if not isinstance(batch_norm, bool):
            raise ValueError(f"batch_norm must be True or False; received {batch_norm!r}.")
        self.filters = filters
        self.block = block
        self.strides = strides
        self.dilation = _pair(dilation, "dilation")
        strided_dilation = self.dilation[1] if block == "bottleneck" else self.dilation[0]
        if strides > 1 and strided_dilation > 1:
            raise ValueError(
                "A strided conv cannot also be dilated (Keras forbids it and DRNs never need "
                f"it); received strides={strides}, dilation={self.dilation}."
            )
        self.residual = residual
        self.anti_alias = anti_alias
        self.anti_alias_size = anti_alias_size
        self.anti_alias_groups = anti_alias_groups
        self.epsilon = epsilon
        self.momentum = momentum
        self.batch_norm = batch_norm
        self.phase_splits = tuple(phase_splits)
        self.out_channels = filters * BLOCKS[block]
        self._blurred = anti_alias is not None and strides > 1
        # The strided conv: the first 3x3 (basic) or the 3x3 (bottleneck).
        self._conv_stride = 1 if self._blurred else strides

    def _conv(self, filters, kernel_size, name, strides=1, dilation=1):
        # Stride-2 convs pad explicitly in call() (pad_symmetric); stride 1 "same" is symmetric.
        # Only a 3x3 convolution's dilation matters, so only those follow the phase splits.
        return reference_conv(filters, kernel_size, strides, dilation, name, self.dtype_policy,
                              use_bias=not self.batch_norm,
                              phase_splits=self.phase_splits if kernel_size > 1 else ())

    def _bn(self, name):
        if not self.batch_norm:
            return layers.Identity(dtype=self.dtype_policy, name=name)
        return FusedBatchNormalization(
            epsilon=self.epsilon, momentum=self.momentum, dtype=self.dtype_policy, name=name
        )

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(
                "DilatedResidualBlock needs a known channel count; received input shape "
                f"{tuple(input_shape)}."
            )
        d1, d2 = self.dilation
        f, s = self.filters, self._conv_stride
        if self.block == "basic":
            self.conv1 = self._conv(f, 3, "conv1", s, d1)
            self.bn1 = self._bn("bn1")
            self.conv2 = self._conv(f, 3, "conv2", 1, d2)
            self.bn2 = self._bn("bn2")
            chain = [(self.conv1, in_channels), (self.conv2, f)]
            bns = [(self.bn1, f), (self.bn2, f)]
        else:
            self.conv1 = self._conv(f, 1, "conv1")
            self.bn1 = self._bn("bn1")
            self.conv2 = self._conv(f, 3, "conv2", s, d2)
            self.bn2 = self._bn("bn2")
            self.conv3 = self._conv(self.out_channels, 1, "conv3")
            self.bn3 = self._bn("bn3")
            chain = [(self.conv1, in_channels), (self.conv2, f), (self.conv3, f)]
            bns = [(self.bn1, f), (self.bn2, f), (self.bn3, self.out_channels)]
        for conv, channels in chain:
            conv.build((None, None, None, channels))
        for bn, channels in bns:
            bn.build((None, None, None, channels))
        if self._blurred:
            self.blur = self._anti_alias_layer(f, "blur")
            self.blur.build((None, None, None, f))
        self.has_projection = self.residual and (
            self.strides != 1 or in_channels != self.out_channels
        )
        if self.has_projection:
            if self._blurred:
                self.downsample_blur = self._anti_alias_layer(in_channels, "downsample_blur")
                self.downsample_blur.build((None, None, None, in_channels))
            self.downsample_conv = self._conv(
                self.out_channels, 1, "downsample_conv", 1 if self._blurred else self.strides
            )
            self.downsample_conv.build((None, None, None, in_channels))
            self.downsample_bn = self._bn("downsample_bn")
            self.downsample_bn.build((None, None, None, self.out_channels))

    def _anti_alias_layer(self, channels, name):
        return make_anti_alias(
            self.anti_alias,
            channels,
            self.anti_alias_size,
            self.anti_alias_groups,
            name=name,
            dtype=self.dtype_policy,
            batch_norm=self.batch_norm,
        )

    def call(self, inputs, training=None):
        x = inputs
        if self.block == "basic":
            y = ops.relu(self.bn1(pad_symmetric(self.conv1, x), training=training))
            if self._blurred:
                y = self.blur(y, training=training)
            y = self.bn2(pad_symmetric(self.conv2, y), training=training)
        else:
            y = ops.relu(self.bn1(self.conv1(x), training=training))
            y = ops.relu(self.bn2(pad_symmetric(self.conv2, y), training=training))
            if self._blurred:
                y = self.blur(y, training=training)
            y = self.bn3(self.conv3(y), training=training)
        if self.residual:
            shortcut = x
            if self.has_projection:
                if self._blurred:
                    shortcut = self.downsample_blur(shortcut, training=training)
                shortcut = self.downsample_bn(
                    pad_symmetric(self.downsample_conv, shortcut), training=training
                )
            y = y + shortcut
        return ops.relu(y)

    def compute_output_shape(self, input_shape):
        def down(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], down(input_shape[1]), down(input_shape[2]), self.out_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            block=self.block,
            strides=self.strides,
            dilation=self.dilation,
            residual=self.residual,
            anti_alias=self.anti_alias,
            anti_alias_size=self.anti_alias_size,
            anti_alias_groups=self.anti_alias_groups,
            epsilon=self.epsilon,
            momentum=self.momentum,
            batch_norm=self.batch_norm,
        )
        if self.phase_splits:  # only then: configs of other blocks stay as they were
            config.update(phase_splits=list(self.phase_splits))
        return config
