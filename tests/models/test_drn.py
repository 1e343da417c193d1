import keras
import numpy as np
import pytest

import keras_drn
from tests.helpers import random_input, to_numpy
from tests.published import PARAMETERS

ALL = keras_drn.list_models()
# One variant of each architecture runs everywhere; the larger ones carry the slow mark
# (CI still runs them, on one backend).
FAST = ("drn_a_18", "drn_c_26", "drn_d_22")


def _maybe_slow(names):
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _fast_everywhere(names):
    """The other variants on TensorFlow only (tests/conftest.py): what these tests check is
    built from the variant table in Python, and FAST takes each family's blocks, stems and
    level layouts through every backend's ops."""
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.tensorflow_only)
            for n in names]


def test_list_models_and_public_constructors():
    assert ALL == [
        "drn_a_18", "drn_a_34", "drn_a_50", "drn_c_26", "drn_c_42", "drn_c_58", "drn_d_22",
        "drn_d_24", "drn_d_38", "drn_d_40", "drn_d_54", "drn_d_56", "drn_d_105", "drn_d_107",
    ]
    for name in ALL:
        constructor = getattr(keras_drn, name.upper())
        assert constructor.__name__ == name.upper() and "Args:" in constructor.__doc__


@pytest.mark.parametrize("name", _fast_everywhere(ALL))
def test_trainable_parameters_match_the_reference(name):
    model = keras_drn.get_model(name)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == PARAMETERS[name]
    assert model.name == name


@pytest.mark.parametrize("name", _maybe_slow(ALL))
def test_output_shapes_at_224_and_odd_sizes(name):
    model = keras_drn.get_model(name, classes=10)
    for size in [(224, 224), (97, 131)]:
        out = to_numpy(model(random_input((1, *size, 3)), training=False))
        assert out.shape == (1, 10)
        np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    backbone = keras_drn.get_model(name, include_top=False)
    channels = 2048 if name == "drn_a_50" else 512
    out = backbone(random_input((1, 97, 131, 3)), training=False)
    assert tuple(out.shape) == (1, 13, 17, channels)  # output stride 8, rounded up


@pytest.mark.parametrize("name", _maybe_slow(ALL))
def test_keras_save_load_round_trip(name, tmp_path):
    model = keras_drn.get_model(name, classes=7)
    x = random_input((1, 64, 48, 3))
    expected = to_numpy(model(x, training=False))
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x, training=False)), expected, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize(
    "name, levels",
    [
        ("drn_c_26", {1: (16, 1), 2: (32, 2), 3: (64, 4), 4: (128, 8), 5: (256, 8),
                      6: (512, 8), 7: (512, 8), 8: (512, 8)}),
        ("drn_d_22", {1: (16, 1), 2: (32, 2), 3: (64, 4), 4: (128, 8), 5: (256, 8),
                      6: (512, 8), 7: (512, 8), 8: (512, 8)}),
        ("drn_a_18", {1: (64, 4), 2: (128, 8), 3: (256, 8), 4: (512, 8)}),
    ],
)
def test_feature_model_outputs_every_level(name, levels):
    model = keras_drn.get_model(name)
    features = keras_drn.feature_model(model)
    out = features(random_input((1, 224, 224, 3)), training=False)
    assert sorted(out) == sorted(f"level{n}" for n in levels)
    for n, (channels, stride) in levels.items():
        assert tuple(out[f"level{n}"].shape) == (1, 224 // stride, 224 // stride, channels)
    # At 224x224 the last map is 28x28: global pooling equals the reference's AvgPool2d(28).
    assert tuple(out[f"level{max(levels)}"].shape)[1:3] == (28, 28)
    subset = keras_drn.feature_model(model, levels=[2, 4])
    assert sorted(subset(random_input((1, 33, 35, 3)))) == ["level2", "level4"]


def test_feature_model_errors():
    model = keras_drn.DRN_A_18(include_top=False)
    with pytest.raises(ValueError, match=r"Levels \[7\] are not in model 'drn_a_18'"):
        keras_drn.feature_model(model, levels=[7])
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="no 'levelN' layers"):
        keras_drn.feature_model(plain)


@pytest.mark.parametrize("pooling, shape", [("avg", (2, 512)), ("max", (2, 512)),
                                            (None, (2, 4, 5, 512))])
def test_pooling_without_top(pooling, shape):
    model = keras_drn.DRN_D_22(include_top=False, pooling=pooling)
    assert tuple(model(random_input((2, 32, 40, 3))).shape) == shape


def test_static_input_shape_and_input_tensor():
    model = keras_drn.DRN_C_26(input_shape=(64, 64, 3), classes=3)
    assert model.input_shape == (None, 64, 64, 3)
    assert model.output_shape == (None, 3)
    tensor = keras.Input((32, 32, 3))
    model = keras_drn.DRN_D_22(input_tensor=tensor, include_top=False)
    assert model.output_shape == (None, 4, 4, 512)
    four_channels = keras_drn.DRN_D_22(input_shape=(None, None, 4), classes=2)
    assert tuple(four_channels(random_input((1, 16, 16, 4))).shape) == (1, 2)


def test_logits_without_activation():
    model = keras_drn.DRN_D_22(classes=4, classifier_activation=None)
    out = to_numpy(model(random_input((2, 32, 32, 3)), training=False))
    assert not np.allclose(out.sum(axis=-1), 1.0)


# The documented placement (README "API", SPECS section 2): a filter before every downsampling
# except the first conv. Typed from the architecture, not from keras_drn's tables: DRN-C/D
# downsample at the first unit of levels 2, 3 and 4 (stem and level 1 at stride 1); a strided
# block gets one filter after its strided conv and one before its 1x1 projection; DRN-D's
# level 2 is a plain conv (no shortcut, one filter); DRN-A's stem conv is the excluded first
# conv, its max pool gets one and its level 2 (the only strided stage) a block's two.
PLACEMENT = {
    "C": {"layer2_0": 2, "layer3_0": 2, "layer4_0": 2},
    "D": {"layer2_blur": 1, "layer3_0": 2, "layer4_0": 2},
    "A": {"maxpool_blur": 1, "layer2_0": 2},
}


def _filters_by_top_level_layer(model):
    """{top-level layer name: number of BlurPool / AdaptiveBlurPool layers in it}."""
    from keras_drn.layers import AdaptiveBlurPool, BlurPool

    counts = {}
    for layer in model.layers:
        found = [sub for sub in layer._flatten_layers()
                 if isinstance(sub, (BlurPool, AdaptiveBlurPool))]
        if found:
            counts[layer.name] = len(found)
    return counts


# Where the filters go is decided in Python while the model is built (no backend op decides
# it): the bottleneck and DRN-D-24/54 variants run on TensorFlow only, one of each family on
# every backend.
@pytest.mark.parametrize("name, anti_alias", [
    ("drn_a_18", "blur"), ("drn_c_26", "adaptive"), ("drn_d_22", "blur"),
    *(pytest.param(*case, marks=pytest.mark.tensorflow_only) for case in [
        ("drn_a_50", "adaptive"), ("drn_c_58", "blur"), ("drn_d_24", "adaptive"),
        ("drn_d_54", "adaptive")])])
def test_anti_alias_filters_sit_where_the_documentation_puts_them(name, anti_alias):
    """Counts and owners of the filters per variant: the basic and bottleneck blocks, DRN-D's
    extra degridding levels (no downsampling, no filter) and DRN-A-50's stride-1 projection
    in level 1 (channels change, no downsampling, no filter)."""
    from keras_drn.layers import AdaptiveBlurPool, BlurPool

    model = keras_drn.get_model(name, include_top=False, anti_alias=anti_alias)
    assert _filters_by_top_level_layer(model) == PLACEMENT[name[4].upper()]
    kind = BlurPool if anti_alias == "blur" else AdaptiveBlurPool
    layers = [sub for sub in model._flatten_layers() if isinstance(sub, (BlurPool,
                                                                         AdaptiveBlurPool))]
    assert all(type(layer) is kind and layer.strides == 2 for layer in layers)
    expected_size = {"blur": 4, "adaptive": 3}[anti_alias]  # README: filter 4; k=3, 8 groups
    assert all(getattr(layer, "filter_size", getattr(layer, "kernel_size", None))
               == expected_size for layer in layers)
    if anti_alias == "adaptive":
        assert all(layer.groups == 8 for layer in layers)


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")  # one tap
@pytest.mark.parametrize("name, anti_alias", [("drn_a_18", "adaptive"), ("drn_c_26", "blur"),
                                              ("drn_d_22", "adaptive")])
def test_size_one_filters_give_the_plain_model(name, anti_alias, monkeypatch):
    """With a 1x1 low-pass filter (BlurPool's is 1; AdaptiveBlurPool's per-group softmax of
    one tap is 1) anti-aliasing is plain subsampling, so conv(stride 1) then the filter is the
    strided conv, max pool(stride 1) then the filter is the strided max pool, and the model
    equals the plain one with the same weights. A filter in the wrong place (after a 3x3
    conv that should run on the subsampled map, on the wrong shortcut side), a stride applied
    twice or a subsampling offset changes the output or its shape. (The placement code does
    not depend on the filter kind; tests/layers/test_dilated_residual.py checks both kinds in
    both blocks.)"""
    from keras_drn.layers import dilated_residual

    plain = keras_drn.get_model(name, classes=3, classifier_activation=None)
    monkeypatch.setitem(dilated_residual.DEFAULT_FILTER_SIZE, anti_alias, 1)
    blurred = keras_drn.get_model(name, classes=3, classifier_activation=None,
                                  anti_alias=anti_alias)
    weights = {w.path: w for w in blurred.weights}
    for w in plain.weights:
        weights.pop(w.path).assign(w)
    # What remains is AdaptiveBlurPool's filter predictor: irrelevant for one tap.
    assert all("blur" in path for path in weights)
    x = random_input((2, 37, 45, 3))
    ours = to_numpy(blurred(x, training=False))
    np.testing.assert_allclose(ours, to_numpy(plain(x, training=False)), rtol=1e-5, atol=1e-5)


# Both filter kinds train on every backend (A-18 adaptive, D-22 blur); DRN-C-26 with adaptive
# filters (about 25 s on JAX) is slow, so CI trains it on TensorFlow only.
@pytest.mark.parametrize("name, anti_alias", [
    ("drn_a_18", "adaptive"), ("drn_d_22", "blur"),
    pytest.param("drn_c_26", "adaptive", marks=pytest.mark.slow)])
def test_anti_aliased_variants_train(name, anti_alias):
    model = keras_drn.get_model(name, classes=3, anti_alias=anti_alias)
    x = random_input((2, 37, 45, 3))
    assert tuple(model(x).shape) == (2, 3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, np.array([0, 2]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training(policy):
    keras.config.set_dtype_policy(policy)
    model = keras_drn.DRN_D_22(classes=3)
    conv = model.get_layer("layer0_0")
    assert conv.compute_dtype == keras.DTypePolicy(policy).compute_dtype
    assert conv.kernel.dtype == "float32"
    x = random_input((2, 40, 40, 3))
    out = model(x, training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(to_numpy(out).sum(axis=-1), 1.0, rtol=1e-3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, np.array([0, 1]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_weights_from_keras_files(tmp_path):
    source = keras_drn.DRN_D_22(classes=5)
    x = random_input((1, 40, 40, 3))
    expected = to_numpy(source(x, training=False))
    h5 = str(tmp_path / "d22.weights.h5")
    source.save_weights(h5)
    np.testing.assert_allclose(
        to_numpy(keras_drn.DRN_D_22(classes=5, weights=h5)(x, training=False)), expected,
        rtol=1e-5)
    full = str(tmp_path / "d22.keras")
    source.save(full)
    np.testing.assert_allclose(
        to_numpy(keras_drn.DRN_D_22(classes=5, weights=full)(x, training=False)), expected,
        rtol=1e-5)
    with pytest.raises(ValueError, match="does not match 'drn_c_26'"):
        keras_drn.DRN_C_26(classes=5, weights=full)
    with pytest.raises(ValueError, match="Could not load"):
        keras_drn.DRN_D_22(classes=6, weights=h5)


def test_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown model name 'drn_c_27'.*drn_c_26"):
        keras_drn.get_model("drn_c_27")
    assert keras_drn.get_model("DRN-D-22", include_top=False).name == "drn_d_22"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weights": "imagenet-21k"}, "weights must be None.*'imagenet-21k', which is not"),
        ({"weights": "/no/such/file.weights.h5"}, "not an existing file"),
        ({"weights": 3}, "weights must be None"),
        ({"pooling": "sum", "include_top": False},
         r"pooling must be one of \(None, 'avg', 'max'\)"),
        ({"classifier_activation": "softmaxx"}, "classifier_activation must be None.*'softmaxx'"),
        ({"anti_alias": "gauss"}, "anti_alias must be one of"),
        ({"classes": 0}, "classes must be a positive int"),
        ({"input_shape": (224, 224)}, r"input_shape must be \(height, width, channels\)"),
        ({"input_shape": (224, 224, None)}, "channel count must be known"),
        ({"include_top": "yes"}, "include_top must be True or False"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_drn.DRN_D_22(**kwargs)


def test_pretrained_weights_need_three_channels(tmp_path):
    path = tmp_path / "w.weights.h5"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="expect 3 input channels"):
        keras_drn.DRN_D_22(weights=str(path), input_shape=(None, None, 4))


def test_wrong_input_channels_or_rank_at_call():
    model = keras_drn.DRN_D_22(include_top=False)
    with pytest.raises(ValueError, match="incompatible"):
        model(random_input((1, 32, 32, 4)))
    with pytest.raises(ValueError):
        model(random_input((32, 32, 3)))


# DRN-A-50 on TensorFlow only: its levels are DRN-A-18's layers with bottleneck blocks, whose
# shapes every backend computes in the output-shape tests of the FAST variants.
@pytest.mark.parametrize("name", [pytest.param("drn_a_50", marks=pytest.mark.tensorflow_only),
                                  "drn_d_24"])
def test_feature_info_of_the_variant_table_matches_the_built_levels(name):
    """The table's channels and output strides are what the built model's levels give."""
    from keras_drn.models.drn import feature_info

    features = keras_drn.feature_model(keras_drn.get_model(name, include_top=False))
    out = features(random_input((1, 64, 64, 3)), training=False)
    built = [{"level": int(k[5:]), "channels": int(v.shape[-1]), "reduction": 64 // v.shape[1]}
             for k, v in sorted(out.items(), key=lambda item: int(item[0][5:]))]
    assert feature_info(name) == built
