"""DRNSegmenter(backbone_weights=file): the backbone holds the file's values."""

import keras
import numpy as np

import keras_drn
from tests.helpers import backbone_weights_file


def test_backbone_weights_file_is_loaded_into_the_segmenter(tmp_path):
    """Every weight of the segmenter's backbone equals the classifier checkpoint's (its fc
    aside), moving statistics included (set away from their init here); the new head is not
    taken from the file."""
    path, expected = backbone_weights_file(tmp_path)
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=4, backbone_weights=str(path))
    loaded = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
    assert set(expected) <= set(loaded)
    for name, value in expected.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    assert set(loaded) - set(expected) == {"seg/kernel", "seg/bias"}
