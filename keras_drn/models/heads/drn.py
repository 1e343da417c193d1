"""The reference DRN segmentation head (DRNSeg).

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017 (its segmentation
experiments) and the official ``segment.py``: a 1x1 convolution classifies the last level's map, then a frozen bilinear
transposed convolution upsamples the scores by the level's output stride (x8).
"""

import math

import keras
from keras import layers

from keras_drn.layers.bilinear_upsampling import BilinearUpsampling, ResizeLike


def build_head(pyramid, feature_info, image, num_classes, upsampling):
    """Class scores ``(batch, H, W, num_classes)`` from the last level of ``pyramid``.

    Args:
        pyramid: ``{"levelN": (batch, h, w, c)}``, a backbone's ``pyramid_outputs``.
        feature_info: the backbone's levels (``level``, ``channels``, ``reduction``); the last
            one is classified and its ``reduction`` is the upsampling factor.
        image: the input image ``(batch, H, W, 3)``: the size the scores are brought to.
        num_classes: number of classes.
        upsampling: ``"deconv"`` (the reference's fixed bilinear transposed convolution,
            ``up``, then cropped to the image) or ``"bilinear"`` (resizing).

    Layers: ``seg`` (1x1 convolution, normal init of std ``sqrt(2 / num_classes)`` as in the
    reference) and ``up`` (no weights).
    """
    last = feature_info[-1]
    x = layers.Conv2D(
        num_classes,
        1,
        kernel_initializer=keras.initializers.RandomNormal(0.0, math.sqrt(2.0 / num_classes)),
        name="seg",
    )(pyramid[f"level{last['level']}"])
    if upsampling == "deconv":
        return BilinearUpsampling(last["reduction"], name="up")([x, image])
    return ResizeLike("bilinear", name="up")([x, image])
