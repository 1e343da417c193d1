"""Anti-aliased DRNs at tiny inputs: BlurPool (below 9 px) and AdaptiveBlurPool (below 5 px)
made TensorFlow's MirrorPad and torch's reflect pad raise inside the models; every size from
1 px now works on every backend, and sizes that worked before give the same outputs."""

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.layers import adaptive_blur_pool, blur_pool
from tests.helpers import random_input, to_numpy

SIZES = [(1, 1), (2, 3), (5, 5), (8, 8)]


def _todays_pad(x, pads, mode="reflect"):
    """The padding before any-size support: keras.ops.pad alone."""
    return keras.ops.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]], mode=mode)


# Each filter kind in each DRN family's placement (C: blocks with a blurred projection, D: a
# plain conv level too); the other two pairs repeat the same layers at the same sizes.
@pytest.mark.parametrize("variant, anti_alias", [("drn_c_26", "adaptive"), ("drn_d_22", "blur")])
def test_backbones_at_tiny_sizes(variant, anti_alias):
    model = keras_drn.get_model(variant, include_top=False, anti_alias=anti_alias)
    # AdaptiveBlurPool failed below 5 px: 8 x 8 (which worked) is left to BlurPool, whose
    # limit was 9 px; each size is a compilation per layer on JAX.
    sizes = SIZES if anti_alias == "blur" else [s for s in SIZES if min(s) < 8]
    for height, width in sizes:
        features = to_numpy(model(random_input((1, height, width, 3)), training=False))
        # Output stride 8, ceil at every subsampling.
        assert features.shape == (1, -(-height // 8), -(-width // 8), 512)
        assert np.all(np.isfinite(features))


@pytest.mark.parametrize("anti_alias", ["blur", "adaptive"])
def test_segmenter_at_tiny_sizes_and_unchanged_where_reflect_fitted(anti_alias, monkeypatch):
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=3, anti_alias=anti_alias)
    for height, width in [(1, 1), (2, 3)]:
        logits = to_numpy(model(random_input((1, height, width, 3)), training=False))
        assert logits.shape == (1, height, width, 3) and np.all(np.isfinite(logits))
    # 40 x 36: every anti-aliasing layer's input is larger than its padding (the deepest is
    # 5 x 5), so the plain reflect padding of before ran: the outputs are bit for bit its.
    x = random_input((1, 40, 36, 3))
    ours = to_numpy(model(x, training=False))
    monkeypatch.setattr(blur_pool, "pad_spatial", _todays_pad)
    monkeypatch.setattr(adaptive_blur_pool, "pad_spatial", _todays_pad)
    np.testing.assert_array_equal(to_numpy(model(x, training=False)), ours)
