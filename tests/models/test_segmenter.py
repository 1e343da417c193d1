import keras
import numpy as np
import pytest

import keras_drn
from tests.helpers import random_input, to_numpy

CONFIGS = [
    {},
    {"upsampling": "bilinear"},
    {"context": "parsenet"},
    {"head": "gcn"},
    {"head": "gcn", "upsampling": "bilinear", "context": "parsenet"},
    {"backbone": "drn_a_18", "head": "gcn"},
    {"backbone": "drn_c_26", "anti_alias": "adaptive"},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())) or "drn")
def test_logits_at_input_resolution_for_any_size(config):
    model = keras_drn.DRNSegmenter(num_classes=4, **config)
    # AdaptiveBlurPool compiles per input size on JAX (about 15 s each there): one odd size
    # for it; the other configs cover the sizes, tests/models/test_anti_alias_sizes.py the
    # adaptive filters at tiny ones.
    sizes = [(33, 50)] if "anti_alias" in config else [(64, 64), (97, 131), (33, 50)]
    for size in sizes:
        out = model(random_input((1, *size, 3)), training=False)
        assert tuple(out.shape) == (1, *size, 4)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert np.all(np.isfinite(to_numpy(out)))


def test_reference_head_layers():
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=19)
    seg = model.get_layer("seg")
    assert tuple(seg.kernel.shape) == (1, 1, 512, 19) and seg.use_bias
    assert not model.get_layer("up").weights  # the fixed bilinear x8 has no weights
    backbone = keras_drn.DRN_D_22(include_top=False)
    assert model.count_params() == backbone.count_params() + 512 * 19 + 19
    assert model.get_layer("layer8_0").name == "layer8_0"  # flat: backbone layers by name


# The GCN + ParseNet case is slow (about 20 s on JAX): CI runs it on TensorFlow; the reference
# head trains on every backend, and the GCN layers' own tests (tests/layers) train them.
@pytest.mark.parametrize("config", [
    {}, pytest.param({"head": "gcn", "context": "parsenet"}, marks=pytest.mark.slow)])
def test_trains_with_ignore_label_and_round_trips(config, tmp_path):
    model = keras_drn.DRNSegmenter(num_classes=3, **config)
    x = random_input((2, 40, 48, 3))
    y = np.random.default_rng(0).integers(0, 3, size=(2, 40, 48))
    y[:, :5] = 255
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
    )
    history = model.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    expected = to_numpy(model(x, training=False))
    path = str(tmp_path / "segmenter.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x, training=False)), expected, rtol=1e-5,
                               atol=1e-5)
    weights = str(tmp_path / "segmenter.weights.h5")
    model.save_weights(weights)
    again = keras_drn.DRNSegmenter(num_classes=3, weights=weights, **config)
    np.testing.assert_allclose(to_numpy(again(x, training=False)), expected, rtol=1e-5,
                               atol=1e-5)


def test_mixed_precision_logits_are_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = keras_drn.DRNSegmenter(num_classes=3, head="gcn")
    out = model(random_input((1, 35, 37, 3)), training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert model.get_layer("gcn_level8").compute_dtype == "bfloat16"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": "resnet50"}, "Unknown backbone 'resnet50'; valid names"),
        ({"head": "fcn"}, r"head must be one of \('drn', 'gcn'\)"),
        ({"context": "aspp"}, "context must be one of"),
        ({"upsampling": "nearest"}, "upsampling must be one of"),
        ({"num_classes": 0}, "num_classes must be a positive int"),
        ({"backbone_weights": "nope.h5"}, "weights must be None"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_drn.DRNSegmenter(**kwargs)


def _producer(layer):
    """Name of the layer whose output feeds ``layer`` (called once, one input)."""
    return layer.input._keras_history.operation.name


# Typed from the documented architecture (README "API", SPECS sections 3-4): GCN taps at the
# ends of levels 2, 3, 4 and 8 of DRN-C/D (strides 2, 4, 8, 8) and 1, 2, 4 of DRN-A (4, 8, 8);
# ParseNet's context sits on the last level and feeds the classifier (or the last tap).
@pytest.mark.parametrize("backbone, taps", [
    ("drn_d_22", {2: 2, 3: 4, 4: 8, 8: 8}),
    ("drn_c_26", {2: 2, 3: 4, 4: 8, 8: 8}),
    ("drn_a_18", {1: 4, 2: 8, 4: 8}),
])
@pytest.mark.parametrize("context", [None, "parsenet"])
def test_gcn_taps_are_the_documented_levels(backbone, taps, context):
    model = keras_drn.DRNSegmenter(backbone, num_classes=3, head="gcn", context=context)
    gcn = sorted(int(layer.name[len("gcn_level"):]) for layer in model.layers
                 if layer.name.startswith("gcn_level"))
    assert gcn == sorted(taps)
    last = max(taps)
    for level, stride in taps.items():
        layer = model.get_layer(f"gcn_level{level}")
        source = "context" if context and level == last else f"level{level}"
        assert _producer(layer) == source
        assert _producer(model.get_layer(f"br_level{level}")) == f"gcn_level{level}"
    if context:
        assert _producer(model.get_layer("context")) == f"level{last}"
    # Each tap sees its level's resolution: at 64 x 64, 64 / stride.
    probe = keras.Model(model.input, [model.get_layer(f"gcn_level{n}").input for n in taps])
    for (level, stride), features in zip(taps.items(), probe(random_input((1, 64, 64, 3)))):
        assert tuple(features.shape[1:3]) == (64 // stride, 64 // stride), level


@pytest.mark.parametrize("context", [None, "parsenet"])
def test_reference_head_reads_the_last_level(context):
    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=3, context=context)
    assert _producer(model.get_layer("seg")) == ("context" if context else "level8")
    if context:
        assert _producer(model.get_layer("context")) == "level8"
