"""Shared checks: every keras_drn layer gets the same ones (shapes, config, .keras round
trip, mixed precision, gradients reaching every trainable weight)."""

import keras
import numpy as np
from keras import ops

# Mixed precision: machine epsilon of the compute dtype (float16 2^-10, bfloat16 2^-7). Each
# rounding to it moves a value by at most eps / 2 of its size, and the layers' sums accumulate
# in float32, so the output may differ from float32's by about eps / 2 per rounding on the way
# from the input: the input cast, and one per chained op that rounds its result (a conv, BN,
# an add, a cast back after a float32 section). MIXED_OPS states that op count per layer
# (float32 sections such as L2NormScale's norm count once: only their final cast rounds);
# the tolerance is (1 + ops) * eps / 2 of max |y|. Measured on TensorFlow (2026-12-02): 0.2
# to 1.3 eps, within these by 1.3x or more (the checks pass on JAX and PyTorch too); the old
# flat 20 eps (float16) and 10 eps (bfloat16) were 10-40x the rounding error.
MIXED_EPSILON = {"mixed_float16": 2.0**-10, "mixed_bfloat16": 2.0**-7}
MIXED_OPS = {
    # One depthwise conv, counted as 3 for float16: where oneDNN has no float16 path (an AMD EPYC with
    # AVX-512 BF16, 2026-12-02) TensorFlow's Eigen kernel rounds its partial sums, measured
    # 1.04-1.58 eps for filters 3-7 (the filter-7 sum has 49 taps). bfloat16 is unaffected.
    "BlurPool": 3,
    "BilinearUpsampling": 2,  # two matrix products (one per axis)
    "DilatedConv2D": 1,
    "L2NormScale": 1,  # float32 inside, one cast out
    "GlobalContext": 1,  # two L2NormScale side by side, concatenated
    "GlobalConvBlock": 3,  # two convs in sequence, then the add of the branches
    "BoundaryRefinement": 3,  # conv, conv, residual add
    "FusedBatchNormalization": 1,  # one normalisation (statistics in float32)
    "AdaptiveBlurPool": 3,  # conv, BN (softmax in float32), the weighted sum
    "DilatedResidualBlock": 6,  # up to conv-BN-conv-BN-conv-BN plus the shortcut add
    "SpaceToPhase": 0,  # a rearrangement: only the input's cast rounds
    "PhaseToSpace": 0,
}


def mixed_tolerance(layer_cls, policy):
    """Largest expected max |mixed - float32| as a fraction of max |float32 output|."""
    return (1 + MIXED_OPS[layer_cls.__name__]) * MIXED_EPSILON[policy] / 2


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def value_and_gradients(fn, x, variables=()):
    """``fn(x)``, a scalar, and its gradients with respect to ``x`` and to the Keras
    ``variables`` it reads, by the current backend's autodiff (TensorFlow's tape, jax.grad,
    PyTorch's backward): ``(value, [d/dx, d/dvariable, ...])`` as a float and numpy arrays.
    ``x`` is fed as a float32 tensor. On JAX the variables are traced through a stateless scope,
    so updates ``fn`` makes (BatchNormalization's moving statistics) are dropped; the other
    backends apply them."""
    backend = keras.backend.backend()
    x = np.asarray(x, "float32")
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        gradients = tape.gradient(value, [x, *variables])
    elif backend == "jax":
        import jax

        def stateless(x, values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(x)

        value, (gx, gv) = jax.value_and_grad(stateless, argnums=(0, 1))(
            jax.numpy.asarray(x), [v.value for v in variables])
        gradients = [gx, *gv]
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        value = fn(x)
        value.backward()
        gradients = [x.grad, *(v.value.grad for v in variables)]
    return float(to_numpy(value)), [to_numpy(g) for g in gradients]


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
    for policy in MIXED_EPSILON:
        tolerance = mixed_tolerance(layer_cls, policy)
        mixed = layer_cls(**init_kwargs, dtype=policy)
        mixed(x, training=False)
        mixed.set_weights(layer.get_weights())
        out = mixed(x, training=False)
        expected_dtype = keras.DTypePolicy(policy).compute_dtype
        assert keras.backend.standardize_dtype(out.dtype) == expected_dtype
        out = to_numpy(ops.cast(out, "float32"))
        assert np.all(np.isfinite(out))
        scale = np.abs(y).max() + 1e-3
        error = np.abs(out - y).max() / scale
        assert error <= tolerance, (
            f"{policy}: max |mixed - float32| is {error / MIXED_EPSILON[policy]:.2f} eps of "
            f"max |y|, above {tolerance / MIXED_EPSILON[policy]:.2f} eps")

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


def backbone_weights_file(tmp_path):
    """A DRN-D-22 classifier checkpoint (10 classes) with moving statistics set away from
    their init, and the values of its weights other than fc, by path: ``(path, expected)``."""
    import keras_drn

    source = keras_drn.DRN_D_22(classes=10)
    rng = np.random.default_rng(0)
    for weight in source.weights:
        if "moving" in weight.path:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    path = tmp_path / "d22.weights.h5"
    source.save_weights(path)
    expected = {w.path: to_numpy(w) for w in source.weights if not w.path.startswith("fc/")}
    return path, expected
