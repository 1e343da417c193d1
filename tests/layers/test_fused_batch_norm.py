import keras
import numpy as np
import pytest

from keras_drn.layers.fused_batch_norm import FusedBatchNormalization, keras_batch_norm
from keras_drn.layers.platform import tensorflow_on_cpu
from tests.helpers import random_input, run_layer_test, to_numpy, value_and_gradients

SETTINGS = {"epsilon": 1e-5, "momentum": 0.9}


def test_standard_checks(tmp_path):
    run_layer_test(FusedBatchNormalization, SETTINGS, (2, 5, 6, 8), (2, 5, 6, 8), tmp_path)


def _pair(policy, **kwargs):
    """Keras's BatchNormalization and ours with the same non-trivial weights."""
    pair = [keras.layers.BatchNormalization(**SETTINGS, **kwargs, dtype=policy),
            FusedBatchNormalization(**SETTINGS, **kwargs, dtype=policy)]
    for layer in pair:
        layer.build((None, None, None, 6))
        values = {"gamma": np.linspace(0.5, 2.0, 6), "beta": np.linspace(-1.0, 1.0, 6),
                  "moving_mean": np.linspace(-0.5, 0.5, 6),
                  "moving_variance": np.linspace(0.5, 3.0, 6)}
        for name, value in values.items():
            if getattr(layer, name, None) is not None:
                getattr(layer, name).assign(value.astype("float32"))
    return pair


def _gradients(layer, x, weights):
    """d(sum(y * w)) / d(x, weights), w a fixed random map, on the current backend."""
    index = keras.ops.convert_to_tensor(random_input(x.shape, seed=7))
    return value_and_gradients(
        lambda x: keras.ops.sum(keras.ops.cast(layer(x, training=True), "float32") * index),
        x, weights)[1]


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("affine", [True, False])
def test_equals_keras_batch_normalization(policy, affine):
    # Training output, gradients, two updates of the moving statistics (Keras's biased batch
    # variance: the fused kernel returns the Bessel-corrected one), then inference output.
    keras_bn, fused = _pair(policy, center=affine, scale=affine)
    tolerance = 1e-5 if policy == "float32" else 2.0**-8
    for step in range(2):
        x = random_input((2, 5, 7, 6), seed=step) * 3.0 + 2.0
        expected, actual = (to_numpy(keras.ops.cast(layer(x, training=True), "float32"))
                            for layer in (keras_bn, fused))
        np.testing.assert_allclose(actual, expected, atol=tolerance * 4, rtol=tolerance)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(to_numpy(getattr(fused, name)),
                                   to_numpy(getattr(keras_bn, name)), rtol=1e-5, atol=1e-6)
    x = random_input((3, 4, 4, 6), seed=5)
    np.testing.assert_allclose(to_numpy(keras.ops.cast(fused(x, training=False), "float32")),
                               to_numpy(keras.ops.cast(keras_bn(x, training=False), "float32")),
                               atol=tolerance * 4, rtol=tolerance)
    if policy == "float32":
        x = random_input((2, 5, 7, 6), seed=9)
        expected = _gradients(keras_bn, x, keras_bn.trainable_weights)
        actual = _gradients(fused, x, fused.trainable_weights)
        assert len(actual) == (3 if affine else 1)
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4 * np.abs(e).max())


def test_a_frozen_layer_normalises_with_its_moving_statistics():
    keras_bn, fused = _pair("float32")
    fused.trainable = False
    x = random_input((2, 3, 3, 6))
    before = to_numpy(fused.moving_mean)
    np.testing.assert_allclose(to_numpy(fused(x, training=True)),
                               to_numpy(keras_bn(x, training=False)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(fused.moving_mean), before)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's kernel")
def test_tensorflow_on_cpu_runs_the_fused_kernel_in_training_and_inference():
    import tensorflow as tf

    assert tensorflow_on_cpu()
    layer = FusedBatchNormalization(**SETTINGS)
    layer.build((None, None, None, 6))
    for training in (True, False):
        graph = tf.function(lambda x, t=training: layer(x, training=t)).get_concrete_function(
            tf.TensorSpec((2, 4, 4, 6))).graph
        kinds = {op.type for op in graph.get_operations()}
        assert "FusedBatchNormV3" in kinds, kinds
    # A mask, or keras_batch_norm(), takes Keras's path: no fused op there.
    graph = tf.function(lambda x: layer(x, training=True, mask=tf.ones((2, 4, 4), bool))
                        ).get_concrete_function(tf.TensorSpec((2, 4, 4, 6))).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
    with keras_batch_norm():
        graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
            tf.TensorSpec((2, 4, 4, 6))).graph
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}


def test_every_batch_normalization_of_the_models_is_fused():
    import keras_drn

    model = keras_drn.DRNSegmenter("drn_d_22", num_classes=3, anti_alias="adaptive",
                                   input_shape=(32, 32, 3))
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) > 25
    assert all(type(layer) is FusedBatchNormalization for layer in norms)
