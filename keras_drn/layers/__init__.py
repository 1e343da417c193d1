"""keras_drn.layers: the building blocks, one paper idea per module."""

from keras_drn.layers.adaptive_blur_pool import AdaptiveBlurPool
from keras_drn.layers.bilinear_upsampling import BilinearUpsampling, ResizeLike
from keras_drn.layers.blur_pool import BlurPool
from keras_drn.layers.boundary_refinement import BoundaryRefinement
from keras_drn.layers.dilated_conv import DilatedConv2D
from keras_drn.layers.dilated_residual import DilatedResidualBlock
from keras_drn.layers.fused_batch_norm import FusedBatchNormalization
from keras_drn.layers.global_context import GlobalContext
from keras_drn.layers.global_conv import GlobalConvBlock
from keras_drn.layers.l2_norm_scale import L2NormScale
from keras_drn.layers.phase import PhaseToSpace, SpaceToPhase

__all__ = [
    "AdaptiveBlurPool",
    "BilinearUpsampling",
    "BlurPool",
    "BoundaryRefinement",
    "DilatedConv2D",
    "DilatedResidualBlock",
    "FusedBatchNormalization",
    "GlobalContext",
    "GlobalConvBlock",
    "L2NormScale",
    "PhaseToSpace",
    "ResizeLike",
    "SpaceToPhase",
]
