"""keras_drn._keras_compat, the one module reaching into private Keras: each of its functions
on a tiny model under the installed Keras (a release that moves a private piece fails here,
naming the function), and a check that nothing else in the package, examples or tools names
private Keras."""

import pathlib
import re

import keras
import numpy as np
import pytest

from keras_drn import _keras_compat as compat
from keras_drn.layers.dilated_residual import DilatedResidualBlock

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _block():
    """A DilatedResidualBlock with adaptive anti-aliasing: BatchNormalization one and two levels
    down (``bn1``; ``blur.bn``)."""
    block = DilatedResidualBlock(4, strides=2, anti_alias="adaptive", name="block")
    block.build((None, 8, 8, 2))
    return block


def test_sublayers_walks_composite_layers():
    block = _block()
    direct = compat.sublayers(block, recursive=False)
    every = compat.sublayers(block)
    assert block not in every
    assert {layer.name for layer in direct} == {
        "conv1", "bn1", "conv2", "bn2", "blur", "downsample_blur", "downsample_conv",
        "downsample_bn"}
    assert all(any(layer is d for d in direct) for layer in [block.blur, block.bn1])
    assert not any(layer is block.blur.bn for layer in direct)
    # each once; the two blurs' own conv and bn besides
    assert len(every) == len({id(layer) for layer in every}) == len(direct) + 4
    assert every.index(block.blur) < every.index(block.blur.bn)  # parents first
    model = keras.Sequential([keras.Input((8, 8, 2)), block])
    in_model = [id(layer) for layer in compat.sublayers(model)]
    assert {id(block)} | {id(layer) for layer in every} <= set(in_model)
    assert in_model.index(id(block)) < in_model.index(id(block.blur.bn))


def test_sublayers_names_a_missing_private_piece(monkeypatch):
    block = _block()
    monkeypatch.delattr(keras.layers.Layer, "_flatten_layers")
    with pytest.raises(compat.PrivateKerasMissing,
                       match=rf"sublayers relies on Layer\._flatten_layers, which Keras "
                             rf"{re.escape(keras.__version__)} does not have"):
        compat.sublayers(block)
    with pytest.raises(TypeError, match="needs a keras.layers.Layer"):
        compat.sublayers(object())


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, x):
        return self.dense(x)


def _functional():
    inputs = keras.Input((3,), name="x")
    a = keras.layers.Dense(2, name="a")(inputs)
    b = keras.layers.Dense(2, name="b")(a)
    return keras.Model(inputs, keras.layers.Add(name="add")([a, b]), name="tiny")


def test_is_functional():
    assert compat.is_functional(_functional())
    assert not compat.is_functional(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    assert not compat.is_functional(_Subclassed())
    assert not compat.is_functional(keras.layers.Dense(2))


def test_nodes_by_depth_records_every_call():
    model = _functional()
    nodes = [node for depth in compat.nodes_by_depth(model).values() for node in depth]
    calls = {node.operation.name: node for node in nodes if not node.is_input}
    assert set(calls) == {"a", "b", "add"}
    assert [node.operation.name for node in nodes if node.is_input] == ["x"]
    assert len(calls["add"].input_tensors) == 2 and len(calls["b"].input_tensors) == 1
    with pytest.raises(ValueError, match="needs a functional model"):
        compat.nodes_by_depth(_Subclassed())


def test_tensor_history_names_the_producing_call():
    inputs = keras.Input((3,))
    shared = keras.layers.Dense(3, name="shared")
    first, second = shared(inputs), shared(shared(inputs))
    assert compat.tensor_history(first) == (shared, 0, 0)
    history = compat.tensor_history(second)
    assert history.operation is shared and history.node_index == 2 and history.tensor_index == 0
    assert compat.tensor_history(inputs).operation.name.startswith("input_layer")
    model = keras.Model(inputs, second)
    last_call, = compat.nodes_by_depth(model)[0]  # depth 0: the call producing the output
    assert compat.tensor_history(last_call.input_tensors[0]).operation is shared


def test_set_initial_epoch_resumes_fit():
    class Resume(keras.callbacks.Callback):
        def __init__(self, epoch):
            super().__init__()
            self.epoch, self.seen = epoch, []

        def on_train_begin(self, logs=None):
            compat.set_initial_epoch(self.model, self.epoch)

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(epoch)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32")
    for epoch, seen in [(2, [2, 3]), (None, [0, 1, 2, 3])]:
        resume = Resume(epoch)
        model.fit(x, y, epochs=4, verbose=0, callbacks=[resume])
        assert resume.seen == seen


def test_initialize_jax_rng_keeps_a_seed_already_set():
    pytest.importorskip("jax")
    keras.utils.set_random_seed(7)
    compat.initialize_jax_rng()
    drawn = np.random.random(3)
    keras.utils.set_random_seed(7)
    assert np.array_equal(drawn, np.random.random(3))


# What a Keras release may move or rename without notice: its private package and the private
# attributes and functions keras_drn needs (each wrapped in keras_drn._keras_compat).
PRIVATE_KERAS = re.compile(
    r"keras\.src\b|\._flatten_layers\b|\._nodes_by_depth\b|\._keras_history\b"
    r"|\._initial_epoch\b|\binitialize_rng\b")


@pytest.mark.backend_independent
def test_private_keras_is_reached_from_keras_compat_only():
    """The package, its examples and tools name no private Keras outside _keras_compat.py:
    examples and tools teach public APIs, and a Keras release that moves a private piece
    breaks one module (whose tests above name the piece), not files all over."""
    allowed = ROOT / "keras_drn" / "_keras_compat.py"
    offenders = []
    for folder in ("keras_drn", "examples", "tools"):
        for path in sorted((ROOT / folder).rglob("*")):
            if (path == allowed or not path.is_file() or "__pycache__" in path.parts
                    or path.suffix not in (".py", ".sh", ".md", ".ipynb")):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if PRIVATE_KERAS.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, (
        "private Keras outside keras_drn/_keras_compat.py (add a function there, or use a "
        "public API):\n" + "\n".join(offenders))
