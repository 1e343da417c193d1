"""One tester for every head of ``keras_drn.models.heads.HEADS`` (and the contexts): a new head
gets these checks from its registry entry."""

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.models.drn import feature_info
from keras_drn.models.heads import CONTEXTS, HEADS, gcn
from keras_drn.models.variants import GCN_TAPS, VARIANTS
from tests.helpers import random_input, to_numpy, value_and_gradients

SIZE = (33, 45)
CASES = [(head, None) for head in HEADS] + [("drn", context) for context in CONTEXTS]


def _segmenter(head, context, **kwargs):
    return keras_drn.DRNSegmenter("drn_d_22", num_classes=3, head=head, context=context,
                                  **kwargs)


@pytest.mark.parametrize("head, context", CASES)
def test_forward_at_an_odd_size_and_gradient_reaches_the_backbone(head, context):
    model = _segmenter(head, context)
    x = random_input((1, *SIZE, 3))
    assert tuple(model(x, training=False).shape) == (1, *SIZE, 3)
    first = model.get_layer("layer0_0").kernel
    _, (_, gradient) = value_and_gradients(
        lambda x: keras.ops.mean(model(x, training=False) ** 2), x, [first])
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)


@pytest.mark.parametrize("head, context", CASES)
def test_config_and_keras_round_trip(head, context, tmp_path):
    model = _segmenter(head, context)
    x = random_input((1, *SIZE, 3))
    expected = to_numpy(model(x, training=False))
    clone = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    path = str(tmp_path / "segmenter.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x, training=False)), expected, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("head, context", CASES)
def test_on_a_built_backbone_equals_by_name(head, context):
    by_name = _segmenter(head, context)
    backbone = keras_drn.DRN_D_22(include_top=False)
    built = keras_drn.DRNSegmenter(backbone, num_classes=3, head=head, context=context)
    assert [w.path for w in built.weights] == [w.path for w in by_name.weights]
    built.set_weights(by_name.get_weights())
    x = random_input((1, *SIZE, 3))
    np.testing.assert_allclose(to_numpy(built(x, training=False)),
                               to_numpy(by_name(x, training=False)), rtol=1e-5, atol=1e-5)
    assert built.get_layer("layer8_0") is backbone.get_layer("layer8_0")  # shared layers


def test_a_loaded_backbone_keeps_its_pyramid(tmp_path):
    backbone = keras_drn.DRN_A_18(include_top=False)
    path = str(tmp_path / "backbone.keras")
    backbone.save(path)
    loaded = keras.saving.load_model(path)
    assert list(loaded.pyramid_outputs) == ["level1", "level2", "level3", "level4"]
    assert loaded.feature_info == feature_info("drn_a_18")
    model = keras_drn.DRNSegmenter(loaded, num_classes=2, head="gcn")
    assert tuple(model(random_input((1, *SIZE, 3))).shape) == (1, *SIZE, 2)


def test_a_backbone_without_pyramid_outputs_is_refused():
    inputs = keras.Input((None, None, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="conv")(inputs), name="plain")
    with pytest.raises(ValueError, match=r"A built backbone must carry pyramid_outputs .* "
                                         r"received Functional 'plain' without them"):
        keras_drn.DRNSegmenter(plain, num_classes=2)


def test_a_built_backbone_refuses_arguments_it_brings_itself():
    backbone = keras_drn.DRN_D_22(include_top=False)
    with pytest.raises(ValueError, match=r"\['backbone_weights'\] apply to a backbone built by "
                                         r"name; .* received \{'backbone_weights': 'imagenet'\}"):
        keras_drn.DRNSegmenter(backbone, backbone_weights="imagenet")


def test_a_typo_in_a_head_or_context_lists_the_names():
    with pytest.raises(ValueError, match=r"head must be one of \('drn', 'gcn'\); received "
                                         r"head='gnc'"):
        keras_drn.DRNSegmenter(head="gnc")
    with pytest.raises(ValueError, match=r"context must be one of \(None, 'parsenet'\); "
                                         r"received context='parsnet'"):
        keras_drn.DRNSegmenter(context="parsnet")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gcn_taps_from_the_strides_are_the_documented_ones(variant):
    """The GCN head finds its taps from the pyramid's output strides; they are the table's."""
    expected = list(GCN_TAPS[VARIANTS[variant].arch])
    assert gcn.taps(feature_info(variant)) == expected
