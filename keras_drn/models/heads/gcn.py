"""Global Convolutional Network head with Boundary Refinement, fused coarse to fine.

Peng, Zhang, Yu, Luo, Sun, "Large Kernel Matters -- Improve Semantic Segmentation by Global
Convolutional Network", CVPR 2017, section 3.3 (figure 2), applied to DRN's levels: a GCN block
and a BR block on each tap, then from the coarsest tap: x2 upsampling where the output stride
changes, addition and BR; finally x2 steps, each followed by BR, back to the image size.
"""

import math

from keras import layers

from keras_drn.layers.bilinear_upsampling import ResizeBy, ResizeLike
from keras_drn.layers.boundary_refinement import BoundaryRefinement
from keras_drn.layers.global_conv import GlobalConvBlock


def taps(feature_info):
    """``[(level, reduction)]``: the first level at each output stride from 2 on, and the last
    level (DRN-C/D: levels 2, 3, 4 and 8 at strides 2, 4, 8, 8; DRN-A: 1, 2, 4 at 4, 8, 8)."""
    found, strides = [], set()
    for info in feature_info:
        if info["reduction"] >= 2 and info["reduction"] not in strides:
            strides.add(info["reduction"])
            found.append((info["level"], info["reduction"]))
    last = feature_info[-1]
    if found[-1][0] != last["level"]:
        found.append((last["level"], last["reduction"]))
    return found


def _upsample_x2(x, reference, upsampling, num_classes, name):
    """x2 upsampling of a score map, then cropped or resized to ``reference``'s size when one
    is given (a finer score map or the image)."""
    if upsampling == "bilinear":
        if reference is None:
            return ResizeBy(2, name=name)(x)
        return ResizeLike("bilinear", name=name)([x, reference])
    x = layers.Conv2DTranspose(
        num_classes, 4, strides=2, padding="same", use_bias=False, name=f"{name}_deconv"
    )(x)
    return x if reference is None else ResizeLike("crop", name=name)([x, reference])


def build_head(pyramid, feature_info, image, num_classes, upsampling, kernel_size=15):
    """Class scores ``(batch, H, W, num_classes)`` from the ``taps(feature_info)`` levels.

    Args:
        pyramid: ``{"levelN": (batch, h, w, c)}``, a backbone's ``pyramid_outputs``.
        feature_info: the backbone's levels (``level``, ``channels``, ``reduction``).
        image: the input image ``(batch, H, W, 3)``: the size the scores are brought to.
        num_classes: number of classes.
        upsampling: ``"deconv"`` (learned x2 transposed convolutions, then cropped) or
            ``"bilinear"`` (resizing).
        kernel_size: the GCN kernel size (paper default 15).

    Layers: ``gcn_levelN`` and ``br_levelN`` per tap, ``up_levelN`` and ``br_fuse_levelN``
    per fusion, ``up_finalK`` and ``br_finalK`` per final x2 step.
    """
    points = taps(feature_info)
    scores = [
        BoundaryRefinement(name=f"br_level{level}")(
            GlobalConvBlock(num_classes, kernel_size, name=f"gcn_level{level}")(
                pyramid[f"level{level}"]
            )
        )
        for level, _ in points
    ]
    x = scores[-1]
    for index in range(len(points) - 2, -1, -1):
        level, stride = points[index]
        if stride != points[index + 1][1]:
            x = _upsample_x2(x, scores[index], upsampling, num_classes, f"up_level{level}")
        x = BoundaryRefinement(name=f"br_fuse_level{level}")(layers.Add()([x, scores[index]]))
    steps = int(math.log2(points[0][1]))
    for step in range(steps):
        reference = image if step == steps - 1 else None
        x = _upsample_x2(x, reference, upsampling, num_classes, f"up_final{step}")
        x = BoundaryRefinement(name=f"br_final{step}")(x)
    return x
