import numpy as np
import pytest

import keras_drn
from keras_drn.models.localization import (
    activation_map_model,
    box_from_map,
    box_iou,
    class_activation_maps,
    heatmap_overlay,
)
from tests.helpers import random_input, to_numpy


def test_activation_maps_at_output_stride_8_and_consistent_with_the_classifier():
    model = keras_drn.DRN_C_26(classes=5, classifier_activation=None)
    x = random_input((2, 64, 72, 3))
    maps = class_activation_maps(model, x)
    assert maps.shape == (2, 8, 9, 5)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, rtol=1e-5)
    # The maps are the classifier applied at every position: averaging their logits gives
    # the classifier's output (global pooling and fc commute).
    features = to_numpy(keras_drn.feature_model(model, levels=[8])(x, training=False)["level8"])
    kernel, bias = model.get_layer("fc").get_weights()
    per_position = features @ kernel + bias
    softmax = np.exp(per_position - per_position.max(-1, keepdims=True))
    np.testing.assert_allclose(maps, softmax / softmax.sum(-1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(per_position.mean(axis=(1, 2)),
                               to_numpy(model(x, training=False)), rtol=1e-4, atol=1e-4)
    assert activation_map_model(model).output_shape == (None, None, None, 5)
    with pytest.raises(ValueError, match="no 'fc' classifier"):
        activation_map_model(keras_drn.DRN_D_22(include_top=False))


def test_box_from_map_encloses_the_dominant_confident_region():
    probabilities = np.full((8, 10, 3), 0.1, "float32")
    probabilities[..., 0] = 0.8
    probabilities[2:4, 3:7] = [0.1, 0.85, 0.05]
    probabilities[6, 8] = [0.1, 0.6, 0.3]
    assert box_from_map(probabilities, 1, threshold=0.5) == (3, 2, 9, 7)
    assert box_from_map(probabilities, 1, threshold=0.7) == (3, 2, 7, 4)
    assert box_from_map(probabilities, 1, threshold=0.7, image_size=(64, 80)) == (24, 16, 56, 32)
    assert box_from_map(probabilities, 2) is None
    with pytest.raises(ValueError, match="class_id"):
        box_from_map(probabilities, 3)


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou(None, (0, 0, 1, 1)) == 0.0


def test_heatmap_overlay():
    image = np.zeros((32, 40, 3), "float32")
    heat = np.zeros((4, 5), "float32")
    heat[0, 0] = 1.0
    out = heatmap_overlay(image, heat, alpha=1.0)
    assert out.shape == (32, 40, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > out[0, 0, 2] and out[-1, -1, 2] > out[-1, -1, 0]
