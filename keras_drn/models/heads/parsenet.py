"""ParseNet's global context as a segmentation context (Liu, Rabinovich, Berg, "ParseNet:
Looking Wider to See Better", 2015, section 3: early fusion of L2-normalised global and local
features, ``keras_drn.layers.GlobalContext``)."""

from keras_drn.layers.global_context import GlobalContext


def build_context(x):
    """``(batch, h, w, c)`` -> ``(batch, h, w, 2c)``: the layer ``context`` on ``x``."""
    return GlobalContext(name="context")(x)
