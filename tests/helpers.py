"""Shared checks: every keras_drn layer gets the same ones (shapes, config, .keras round
trip, mixed precision, gradients reaching every trainable weight)."""

import keras
import numpy as np
from keras import ops

MIXED_TOLERANCE = {"mixed_float16": 2e-2, "mixed_bfloat16": 8e-2}


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def random_input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _model(layer, channels):
    inputs = keras.Input((None, None, channels))
    return keras.Model(inputs, layer(inputs))


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape, tmp_path):
    """Runs the standard checks and returns the built float32 layer."""
    x = random_input(input_shape)

    layer = layer_cls(**init_kwargs)
    y = to_numpy(layer(x, training=False))
    assert y.shape == tuple(expected_output_shape)
    assert tuple(layer.compute_output_shape(input_shape)) == tuple(expected_output_shape)
    assert np.all(np.isfinite(y))

    # get_config / from_config, and Keras's own (de)serialization by registered name.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    clone(x, training=False)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x, training=False)), y, rtol=1e-5, atol=1e-5)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is layer_cls and restored.get_config() == config

    # .keras round trip of a model with dynamic height and width, safe_mode on.
    model = _model(layer, input_shape[-1])
    path = str(tmp_path / f"{layer.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(loaded(x, training=False)), y, rtol=1e-5, atol=1e-5
    )

    # Mixed precision: computes in the low precision, agrees with float32 within its accuracy.
    for policy, tolerance in MIXED_TOLERANCE.items():
        mixed = layer_cls(**init_kwargs, dtype=policy)
        mixed(x, training=False)
        mixed.set_weights(layer.get_weights())
        out = mixed(x, training=False)
        expected_dtype = keras.DTypePolicy(policy).compute_dtype
        assert keras.backend.standardize_dtype(out.dtype) == expected_dtype
        out = to_numpy(ops.cast(out, "float32"))
        assert np.all(np.isfinite(out))
        scale = np.abs(y).max() + 1e-3
        assert np.abs(out - y).max() <= tolerance * scale, policy

    # One SGD step through model.fit changes every trainable weight: gradients reach them.
    train_model = _model(layer_cls(**init_kwargs), input_shape[-1])
    if not train_model.trainable_weights:
        return layer
    train_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [to_numpy(w) for w in train_model.trainable_weights]
    target = random_input((input_shape[0], *expected_output_shape[1:]), seed=1)
    train_model.fit(x, target, batch_size=input_shape[0], epochs=1, verbose=0)
    for weight, old in zip(train_model.trainable_weights, before):
        new = to_numpy(weight)
        assert np.all(np.isfinite(new)), weight.path
        assert not np.array_equal(new, old), f"no gradient reached {weight.path}"
    return layer
