"""keras_drn.fold_batch_norm: the folded model computes the original's inference outputs with no
BatchNormalization left where one can be folded, and keeps what the model carries.

Tolerance: the fold changes float32 rounding only (a scaled kernel, a bias instead of a
normalisation), a few float32 epsilons (2^-23) of the activation scale per conv, over ~25 convs
in a DRN: ~1e-6 of max |y| measured (1.3e-6 on DRN-C-26). ``TOLERANCE`` = 1e-5 of max(1, max |y|)
leaves ~8x; the errors a wrong fold makes are of the order of |y| itself.
"""

import keras
import numpy as np
import pytest

import keras_drn
from keras_drn.layers import AdaptiveBlurPool, DilatedConv2D, DilatedResidualBlock
from keras_drn.models.fold import fold_batch_norm
from keras_drn.models.preprocessing import normalization_layer, preprocessing_of
from tests.export.helpers import needs
from tests.helpers import mixed_tolerance, random_input, to_numpy

TOLERANCE = 1e-5
X = random_input((2, 32, 32, 3))


def randomize_batch_norms(model, seed=0):
    """Every BatchNormalization at any depth gets non-trivial statistics, scale and offset:
    with the initial ones (mean 0, variance 1, gamma 1, beta 0) a fold is nearly the identity
    and a wrong one passes."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            values = {"moving_mean": rng.normal(0.0, 1.0, shape),
                      "moving_variance": rng.uniform(0.2, 3.0, shape),
                      "gamma": rng.uniform(0.5, 2.0, shape), "beta": rng.normal(0.0, 1.0, shape)}
            for name, value in values.items():
                if getattr(layer, name, None) is not None:
                    getattr(layer, name).assign(value.astype("float32"))
    return model


def batch_norms(model):
    return [layer.name for layer in model._flatten_layers(recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def assert_same_outputs(model, folded, x):
    expected = to_numpy(keras.ops.cast(model(x, training=False), "float32"))
    actual = to_numpy(keras.ops.cast(folded(x, training=False), "float32"))
    assert actual.shape == expected.shape
    error = np.abs(actual - expected).max()
    assert error <= TOLERANCE * max(1.0, np.abs(expected).max()), (
        f"max |folded - original| = {error:.3g}, max |y| = {np.abs(expected).max():.3g}")
    return expected


def small_model(dtype=None):
    """Every kind of pair in a few channels: a preprocessing layer, a top-level conv -> BN,
    AdaptiveBlurPool, a bottleneck block with projection, an anti-aliased basic block, a
    float32 output layer."""
    image = keras.Input((None, None, 3), name="image")
    x = normalization_layer((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))(image)
    x = DilatedConv2D(8, 3, padding="same", use_bias=False, dtype=dtype, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, dtype=dtype, name="stem_bn")(x)
    x = keras.layers.ReLU(dtype=dtype, name="stem_relu")(x)
    x = AdaptiveBlurPool(groups=4, dtype=dtype, name="blur")(x)
    x = DilatedResidualBlock(4, block="bottleneck", strides=2, dtype=dtype, name="bottleneck")(x)
    x = DilatedResidualBlock(8, strides=2, anti_alias="adaptive", anti_alias_groups=4,
                             dtype=dtype, name="basic")(x)
    x = keras.layers.Conv2D(3, 1, dtype=dtype, name="head")(x)
    x = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    return randomize_batch_norms(keras.Model(image, x, name="small"))


def raw_images(size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def drn_c_26():
    """DRN-C-26 with adaptive anti-aliasing (basic blocks, projections, AdaptiveBlurPool at
    the top level and inside blocks, the conv1/bn1 stem) and its folded form."""
    keras.utils.set_random_seed(0)
    model = randomize_batch_norms(keras_drn.DRN_C_26(anti_alias="adaptive", classes=10,
                                                     classifier_activation=None))
    before = [to_numpy(w) for w in model.weights], to_numpy(model(X, training=False))
    return model, fold_batch_norm(model), before


def test_drn_c_26_folds_every_batch_norm_and_keeps_its_outputs(drn_c_26):
    model, folded, _ = drn_c_26
    assert batch_norms(folded) == [] and len(batch_norms(model)) > 20
    assert_same_outputs(model, folded, X)
    assert [layer.name for layer in folded.layers] == [layer.name for layer in model.layers]
    blocks = [layer for layer in folded._flatten_layers(recursive=True)
              if isinstance(layer, (DilatedResidualBlock, AdaptiveBlurPool))]
    assert blocks and not any(layer.batch_norm for layer in blocks)
    assert folded.get_layer("conv1").use_bias  # the stem conv took bn1 in
    assert isinstance(folded.get_layer("bn1"), keras.layers.Identity)
    # Fewer weights: each BN's four vectors became one bias.
    assert len(folded.weights) < len(model.weights)


def test_the_original_model_is_unchanged(drn_c_26):
    model, _, (weights, outputs) = drn_c_26
    assert len(model.weights) == len(weights)
    assert all(np.array_equal(to_numpy(w), v) for w, v in zip(model.weights, weights))
    np.testing.assert_array_equal(to_numpy(model(X, training=False)), outputs)
    assert all(layer.batch_norm for layer in model._flatten_layers(recursive=True)
               if isinstance(layer, (DilatedResidualBlock, AdaptiveBlurPool)))
    assert not model.get_layer("conv1").use_bias


def test_drn_d_22_gcn_segmenter_with_preprocessing():
    # The DRN-D stem (layer0_0/layer0_1), the plain conv units (layerN_{3i} -> layerN_{3i+1})
    # and the GCN head, behind the model's own preprocessing layer.
    model = randomize_batch_norms(keras_drn.DRNSegmenter(
        "drn_d_22", num_classes=3, head="gcn", gcn_kernel_size=5, include_preprocessing=True))
    folded = fold_batch_norm(model)
    assert batch_norms(folded) == []
    assert isinstance(folded.get_layer("layer0_1"), keras.layers.Identity)
    assert folded.get_layer("layer1_0").use_bias and folded.get_layer("layer8_0").use_bias
    assert preprocessing_of(folded) == preprocessing_of(model) is not None
    assert folded.get_layer("logits").dtype_policy.name == "float32"
    assert_same_outputs(model, folded, raw_images())


def test_bottleneck_block_with_projection():
    inputs = keras.Input((None, None, 8))
    block = DilatedResidualBlock(4, block="bottleneck", strides=2, name="block")
    model = randomize_batch_norms(keras.Model(inputs, block(inputs)))
    assert block.has_projection
    folded = fold_batch_norm(model)
    new = folded.get_layer("block")
    assert not new.batch_norm and new.downsample_conv.use_bias and new.conv3.use_bias
    assert batch_norms(folded) == []
    assert_same_outputs(model, folded, random_input((2, 9, 10, 8)))


def test_drn_a_18_with_blur_pool():
    model = randomize_batch_norms(keras_drn.DRN_A_18(anti_alias="blur", classes=5))
    folded = fold_batch_norm(model)
    assert batch_norms(folded) == []
    assert_same_outputs(model, folded, random_input((2, 32, 32, 3)))


def test_nested_backbone_of_build_classifier_is_folded():
    from keras_drn import build_classifier

    model = randomize_batch_norms(build_classifier(3, "drn_d_22", include_preprocessing=True))
    folded = fold_batch_norm(model)
    assert isinstance(folded.get_layer("backbone"), keras.Model)
    assert batch_norms(folded) == [] and batch_norms(model)
    assert preprocessing_of(folded) == preprocessing_of(model)
    # The logits (saturated probabilities would hide a wrong fold).
    model, folded = (keras.Model(m.input, m.get_layer("fc").output) for m in (model, folded))
    assert_same_outputs(model, folded, raw_images())


def test_folded_model_saves_and_loads(tmp_path):
    model = small_model()
    folded = fold_batch_norm(model)
    x = raw_images()
    expected = assert_same_outputs(model, folded, x)
    folded.save(tmp_path / "folded.keras")
    loaded = keras.saving.load_model(tmp_path / "folded.keras")
    assert batch_norms(loaded) == []
    np.testing.assert_allclose(to_numpy(loaded(x, training=False)),
                               to_numpy(folded(x, training=False)), rtol=1e-6, atol=1e-6)
    assert preprocessing_of(loaded) == preprocessing_of(model)
    assert np.abs(expected).max() > 1.0  # the check compared something


def test_mixed_precision_policies_are_kept():
    model = small_model(dtype="mixed_bfloat16")
    folded = fold_batch_norm(model)
    assert batch_norms(folded) == []
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    assert {layer.name: layer.dtype_policy.name for layer in folded.layers} == policies
    assert policies["stem_bn"] == "mixed_bfloat16" and policies["logits"] == "float32"
    assert all(w.dtype == "float32" for w in folded.weights)
    assert keras.backend.standardize_dtype(folded(raw_images()).dtype) == "float32"


def test_mixed_bfloat16_block_within_the_repository_tolerance():
    # tests/helpers.py's bound for a DilatedResidualBlock: the folded bfloat16 block against the
    # float32 block with BatchNormalization (the fold only removes roundings).
    inputs = keras.Input((None, None, 8))
    kwargs = {"filters": 4, "block": "bottleneck", "strides": 2, "anti_alias": "adaptive",
              "anti_alias_groups": 4}
    model = randomize_batch_norms(keras.Model(
        inputs, DilatedResidualBlock(**kwargs, name="block")(inputs)))
    mixed_inputs = keras.Input((None, None, 8))
    mixed = keras.Model(mixed_inputs, DilatedResidualBlock(
        **kwargs, dtype="mixed_bfloat16", name="block")(mixed_inputs))
    mixed.set_weights(model.get_weights())
    folded = fold_batch_norm(mixed)
    assert folded.get_layer("block").dtype_policy.name == "mixed_bfloat16"
    x = random_input((2, 9, 10, 8))
    expected = to_numpy(model(x, training=False))
    actual = to_numpy(keras.ops.cast(folded(x, training=False), "float32"))
    error = np.abs(actual - expected).max() / (np.abs(expected).max() + 1e-3)
    assert error <= mixed_tolerance(DilatedResidualBlock, "mixed_bfloat16")


def test_batch_norms_that_cannot_be_folded_stay():
    inputs = keras.Input((None, None, 3))
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    kept_1 = keras.layers.BatchNormalization(name="conv_output_used_twice")(shared)
    activated = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="relu_conv")(
        inputs)
    kept_2 = keras.layers.BatchNormalization(name="after_activation")(activated)
    pooled = keras.layers.AveragePooling2D(1, name="pool")(inputs)
    kept_3 = keras.layers.BatchNormalization(name="after_pooling")(pooled)
    plain = keras.layers.Conv2D(3, 1, name="plain")(inputs)
    folded_bn = keras.layers.BatchNormalization(center=False, name="folded")(plain)
    x = keras.layers.Concatenate()([shared + kept_1, kept_2, kept_3, folded_bn])
    model = randomize_batch_norms(keras.Model(inputs, x))
    folded = fold_batch_norm(model)
    assert sorted(batch_norms(folded)) == ["after_activation", "after_pooling",
                                           "conv_output_used_twice"]
    assert_same_outputs(model, folded, random_input((2, 8, 8, 3)))


def test_sequential_model_with_center_and_scale_off():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, name="a"),
        keras.layers.BatchNormalization(scale=False, name="a_bn"),
        keras.layers.ReLU(),
        keras.layers.Conv2D(4, 3, use_bias=True, name="b"),
        keras.layers.BatchNormalization(center=False, name="b_bn"),
    ])
    randomize_batch_norms(model)
    model.get_layer("b").bias.assign(np.linspace(-1.0, 1.0, 4).astype("float32"))
    folded = fold_batch_norm(model)
    assert isinstance(folded, keras.Sequential) and batch_norms(folded) == []
    assert_same_outputs(model, folded, random_input((2, 8, 8, 3)))


def test_subclassed_model_is_refused_with_the_fix():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 1)
            self.bn = keras.layers.BatchNormalization()

        def call(self, x):
            return self.bn(self.conv(x))

    net = Net()
    net(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match=r"functional or Sequential.*keras.Model\(inputs, "):
        fold_batch_norm(net)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, name", [("tf_saved_model", "folded"), ("litert", "folded.tflite")])
def test_folded_model_exports(fmt, name, tmp_path):
    needs("tensorflow", *(["ai_edge_litert"] if fmt == "litert" else []))
    folded = fold_batch_norm(small_model())
    report = keras_drn.export(folded, str(tmp_path / name), format=fmt,
                              input_shape=(32, 32), verbose=False)
    assert report.max_rel_diff is not None and report.max_rel_diff < 1e-4
