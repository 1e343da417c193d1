"""AdaptiveBlurPool at stride 2: keras_drn's strided computation against the reference's
method (filters and weighted sums at every input position, then subsampling), forward plus
backward, on the current Keras backend, with a check that both give the same outputs and
gradients.

    KERAS_BACKEND=jax python tools/benchmark_blurpool.py
    python tools/benchmark_blurpool.py --shape 8 112 112 64 --groups 8 --rounds 5

The reference's method is the same layer at ``strides=1`` with the same weights, subsampled
``[:, ::s, ::s]`` (Zou et al.'s released ``Downsample_PASA_group_softmax`` computes the
full-resolution filtered map and then takes every ``s``-th row and column). Both run in
inference mode (BatchNormalization with moving statistics, where the two are equal; in
training mode the strided layer's batch statistics come from the kept positions only). A step
is the forward pass and the gradients of ``sum(output * cotangent)`` with respect to the input
and every weight, compiled (``tf.function(jit_compile=True)``, or without XLA with
``--no-jit``; ``jax.jit``) except on torch, which runs eagerly. XLA on TensorFlow narrows the
gap: it can push the final subsampling back through the element-wise work of the
full-resolution method. Timing alternates the two methods over ``--rounds`` rounds of ``--steps``
steps; the speed-up is the ratio of median step times.
"""

import argparse
import os
import statistics
import sys
import time


def _step_function(layer, subsample, strides, jit=True):
    """Returns ``step(x, cotangent) -> (output, input gradient, weight gradients)``."""
    import keras

    backend = keras.backend.backend()

    def forward(x):
        y = layer(x, training=False)
        return y[:, ::strides, ::strides] if subsample else y

    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=jit)
        def step(x, cotangent):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = forward(x)
                loss = tf.reduce_sum(y * cotangent)
            grads = tape.gradient(loss, [x] + layer.trainable_weights)
            return y, grads[0], grads[1:]

        return step
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in layer.trainable_variables]
        frozen = [v.value for v in layer.non_trainable_variables]

        def loss(x, weights, cotangent):
            y, _ = layer.stateless_call(weights, frozen, x, training=False)
            y = y[:, ::strides, ::strides] if subsample else y
            return jnp.sum(y * cotangent), y

        grad = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))

        def step(x, cotangent):
            (gx, gw), y = grad(x, trainable, cotangent)
            return y, gx, gw

        return step

    def step(x, cotangent):
        x = x.detach().requires_grad_(True)
        for weight in layer.trainable_weights:
            weight.value.grad = None
        y = forward(x)
        (y * cotangent).sum().backward()
        return y.detach(), x.grad, [w.value.grad for w in layer.trainable_weights]

    return step


def _to_numpy(value):
    import keras

    return keras.ops.convert_to_numpy(value)


def _time(step, x, cotangent, steps):
    start = time.perf_counter()
    for _ in range(steps):
        result = step(x, cotangent)
    _to_numpy(result[1])  # waits for the device
    return (time.perf_counter() - start) / steps


def run(shape=(8, 112, 112, 64), kernel_size=3, groups=8, strides=2, steps=5, rounds=5,
        warmup=2, seed=0, jit=True):
    """Returns a dict: step seconds of both methods, the speed-up and the largest output and
    gradient differences."""
    import keras
    import numpy as np

    from keras_drn.layers import AdaptiveBlurPool

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    batch, height, width, channels = shape
    x = keras.ops.convert_to_tensor(rng.standard_normal(shape, "float32"))
    out_shape = (batch, -(-height // strides), -(-width // strides), channels)
    cotangent = keras.ops.convert_to_tensor(rng.standard_normal(out_shape, "float32"))
    strided = AdaptiveBlurPool(kernel_size, strides=strides, groups=groups)
    full = AdaptiveBlurPool(kernel_size, strides=1, groups=groups)
    strided.build(shape)
    full.build(shape)
    # Moving statistics away from 0/1, so inference-mode BatchNormalization does something.
    taps = groups * kernel_size**2
    strided.bn.moving_mean.assign(rng.standard_normal(taps).astype("float32") * 0.1)
    strided.bn.moving_variance.assign(rng.uniform(0.5, 2.0, taps).astype("float32"))
    full.set_weights(strided.get_weights())
    methods = {"strided": _step_function(strided, False, strides, jit),
               "full_then_subsample": _step_function(full, True, strides, jit)}
    results = {name: [_to_numpy(v) for v in _flatten(step(x, cotangent))]
               for name, step in methods.items()}
    differences = [float(np.max(np.abs(a - b))) if a.size else 0.0
                   for a, b in zip(results["strided"], results["full_then_subsample"])]
    for step in methods.values():
        for _ in range(warmup):
            _to_numpy(step(x, cotangent)[0])
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name, step in methods.items():
            times[name].append(_time(step, x, cotangent, steps))
    seconds = {name: statistics.median(values) for name, values in times.items()}
    return {
        "backend": keras.backend.backend(),
        "shape": list(shape),
        "kernel_size": kernel_size,
        "groups": groups,
        "strides": strides,
        "jit": jit,
        "strided_s": seconds["strided"],
        "full_then_subsample_s": seconds["full_then_subsample"],
        "speedup": seconds["full_then_subsample"] / seconds["strided"],
        "max_output_difference": differences[0],
        "max_gradient_difference": max(differences[1:]),
    }


def _flatten(result):
    y, gx, gw = result
    return [y, gx, *gw]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="Keras backend (default: KERAS_BACKEND)")
    parser.add_argument("--shape", type=int, nargs=4, default=(8, 112, 112, 64),
                        metavar=("B", "H", "W", "C"), help="input shape (default 8 112 112 64)")
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--strides", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-jit", action="store_true",
                        help="TensorFlow: a plain tf.function, Keras's default on CPUs, instead "
                        "of XLA (JAX always compiles, torch always runs eagerly)")
    parser.add_argument("--output", metavar="FILE", help="also write the result as a "
                        "docs/benchmarks record (tools/benchmark_record.py)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    r = run(tuple(args.shape), args.kernel_size, args.groups, args.strides, args.steps,
            args.rounds, jit=not args.no_jit)
    print(f"AdaptiveBlurPool k={r['kernel_size']} groups={r['groups']} stride={r['strides']} "
          f"on {tuple(r['shape'])}, backend {r['backend']}"
          + (", XLA" if r["jit"] and r["backend"] == "tensorflow" else "")
          + ", forward + backward:")
    print(f"  full resolution, then subsample (reference): {r['full_then_subsample_s'] * 1e3:8.1f}"
          f" ms/step")
    print(f"  strided (keras_drn):                         {r['strided_s'] * 1e3:8.1f} ms/step")
    print(f"  speed-up {r['speedup']:.2f}x; largest difference: outputs "
          f"{r['max_output_difference']:.1e}, gradients {r['max_gradient_difference']:.1e}")
    if args.output:
        write_record(args.output, r, args.steps, args.rounds)
    return 0


def record_row(r):
    backend = r["backend"] + (" under XLA" if r["jit"] and r["backend"] == "tensorflow" else "")
    return [backend, r["strided_s"] * 1e3, r["full_then_subsample_s"] * 1e3, r["speedup"],
            r["max_output_difference"], r["max_gradient_difference"]]


def write_record(path, r, steps, rounds):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import benchmark_record

    columns = [{"name": "backend", "align": "left"},
               {"name": "strided ms/step", "align": "right", "format": "{:.1f}"},
               {"name": "full resolution ms/step", "align": "right", "format": "{:.1f}"},
               {"name": "speed-up", "align": "right", "format": "{:.2f}x"},
               {"name": "max output difference", "align": "right", "format": "{:.1e}"},
               {"name": "max gradient difference", "align": "right", "format": "{:.1e}"}]
    benchmark_record.write(path, benchmark_record.record(
        "AdaptiveBlurPool: strided vs full resolution then subsampled",
        f"k={r['kernel_size']}, {r['groups']} groups, stride {r['strides']}, input "
        f"{'x'.join(map(str, r['shape']))}, forward + backward, median of {rounds} "
        f"alternating rounds of {steps} steps.", columns, [record_row(r)]))


if __name__ == "__main__":
    sys.exit(main())
