"""BatchNormalization folded into the convolution before it, for inference and export.

In inference a BatchNormalization is a fixed per-channel affine map, ``y = gamma * (x - mean) /
sqrt(var + eps) + beta`` (Ioffe and Szegedy, ICML 2015, section 3.1). After a convolution
``x = conv(u) + b`` it is the same convolution with its kernel scaled per output channel by
``s = gamma / sqrt(var + eps)`` and the bias ``(b - mean) * s + beta``: one op instead of two.
A DRN normalises after every convolution (Yu et al. 2017; the reference's ``nn.BatchNorm2d``),
so this removes ~25 ops from DRN-D-22. LiteRT's converter and ONNX Runtime's graph optimiser may
fold some of them on their own; ``tools/benchmark.py --fold-batch-norm`` and
``tools/benchmark_export.py --fold-batch-norm`` measure what it gives (README, "Speed").
"""

import collections

import keras
import numpy as np

from keras_drn import _keras_compat
from keras_drn.layers.adaptive_blur_pool import AdaptiveBlurPool
from keras_drn.layers.dilated_conv import DilatedConv2D
from keras_drn.layers.dilated_residual import DilatedResidualBlock
from keras_drn.layers.fused_batch_norm import FusedBatchNormalization

# Exact types, not subclasses: a subclass may compute something else with the same weights.
CONVOLUTIONS = (keras.layers.Conv2D, DilatedConv2D)
BATCH_NORMS = (keras.layers.BatchNormalization, FusedBatchNormalization)
# keras_drn's layers that hold (convolution, BatchNormalization) pairs, by sublayer name; their
# batch_norm=False form has biased convolutions and Identity layers in the pairs' places.
COMPOSITES = {
    DilatedResidualBlock: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"),
                           ("downsample_conv", "downsample_bn")),
    AdaptiveBlurPool: (("conv", "bn"),),
}


def fold_batch_norm(model):
    """A new model computing ``model``'s inference outputs with BatchNormalization folded into
    the convolutions before it.

    Each BatchNormalization that directly follows a ``Conv2D`` or ``DilatedConv2D`` (no
    activation, any bias, channel axis normalised) whose output feeds nothing else is folded:
    the convolution gets the kernel scaled per output channel and a bias (computed in float64,
    stored in the variables' dtype), and a weightless ``keras.layers.Identity`` with the
    BatchNormalization's name and dtype policy takes its place. keras_drn's composite layers
    (``DilatedResidualBlock``, ``AdaptiveBlurPool``) become their ``batch_norm=False`` form
    with their BatchNormalization folded the same way. Nested functional and Sequential models
    are folded too. Every other layer is cloned with its weights: a BatchNormalization that
    cannot be folded (after another layer, a shared or activated convolution, renorm, inside an
    unknown layer) stays, so the result is always correct.

    The new model keeps the layer names, dtype policies, the ``preprocessing`` layer and the
    float32 output layer; it saves to ``.keras`` and exports like the original. Its outputs
    equal ``model(x, training=False)`` within float rounding. It is for inference and export,
    not for further training: without BatchNormalization there are no batch statistics to
    learn from. ``model`` itself is not changed.

    Args:
        model: a built functional or Sequential ``keras.Model`` (any keras_drn model).

    Returns:
        The folded ``keras.Model`` (same class for functional and Sequential models).

    Example:
    >>> folded = keras_drn.fold_batch_norm(keras_drn.DRN_D_22(weights="imagenet"))
    """
    if not rebuildable(model):
        raise ValueError(
            f"fold_batch_norm needs a functional or Sequential keras.Model; received "
            f"{type(model).__name__} {getattr(model, 'name', '')!r}, whose graph is Python "
            "code. Build it as keras.Model(inputs, outputs) (or keras.Sequential) and fold that."
        )
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: call it on an input first.")
    pairs = foldable_pairs(model)
    folded_bns = {id(bn) for bn in pairs.values()}
    clones, identities = [], set()

    def clone(layer):
        if id(layer) in folded_bns:
            # The policy as the BN's config holds it: the Identity's config must serialise.
            new = keras.layers.Identity(name=layer.name, dtype=layer.get_config()["dtype"])
            identities.add(id(new))
        else:
            config = layer.get_config()
            if id(layer) in pairs:
                config["use_bias"] = True
            elif type(layer) in COMPOSITES:
                config["batch_norm"] = False
            new = type(layer).from_config(config)
        clones.append((layer, new))
        return new

    def call(layer, *args, **kwargs):
        # A BatchNormalization's call recorded its mask (inference ignores it); Identity's
        # call takes the input alone.
        return layer(*args) if id(layer) in identities else layer(*args, **kwargs)

    # recursive=True: nested functional and Sequential models are rebuilt with the same
    # clone function (their layers come through it), not cloned whole from their config.
    # Keras refuses a call_function for a Sequential, which calls its layers itself.
    folded = keras.models.clone_model(
        model, clone_function=clone, recursive=True,
        call_function=None if isinstance(model, keras.Sequential) else call)
    for layer, new in clones:
        # (Operations such as ``x + y`` in a graph come through clone too: no weights.)
        if isinstance(layer, keras.layers.Layer) and id(layer) not in folded_bns:
            _transfer(layer, new, pairs.get(id(layer)))
    return folded


def rebuildable(model):
    """Whether ``fold_batch_norm`` can rebuild ``model``: a functional or Sequential model, whose
    graph Keras recorded (a subclassed model's graph is its Python code)."""
    # clone_model rebuilds exactly these (functional models: Keras's Functional class) as
    # graphs; a subclassed model's graph is its Python code, which nothing here can rewrite.
    return isinstance(model, keras.Sequential) or _keras_compat.is_functional(model)


def foldable_pairs(model):
    """``{id(conv): bn}`` for each convolution of ``model`` (nested models included) whose
    BatchNormalization ``bn`` can be folded into it (``fold_batch_norm``'s rule).

    Reads the graphs Keras recorded (each functional model's nodes, a Sequential's layer
    order) to see who consumes what; rebuilding is left to ``keras.models.clone_model``.
    """
    calls, uses, candidates = collections.Counter(), collections.Counter(), []

    def visit(graph):
        if isinstance(graph, keras.Sequential):
            calls.update(id(layer) for layer in graph.layers)
            # A chain: each layer's output feeds the next one only.
            candidates.extend((conv, bn, None) for conv, bn in zip(graph.layers, graph.layers[1:]))
            nested = graph.layers
        else:
            nested = []
            for nodes in _keras_compat.nodes_by_depth(graph).values():
                for node in nodes:
                    if node.is_input:
                        continue
                    calls[id(node.operation)] += 1
                    nested.append(node.operation)
                    uses.update(_tensor_key(tensor) for tensor in node.input_tensors)
                    if len(node.input_tensors) == 1:
                        source = node.input_tensors[0]
                        candidates.append((_keras_compat.tensor_history(source).operation,
                                           node.operation,
                                           _tensor_key(source)))
            uses.update(_tensor_key(tensor) for tensor in graph.outputs)
        for layer in nested:
            if rebuildable(layer):
                visit(layer)

    visit(model)
    return {
        id(conv): bn for conv, bn, key in candidates
        if type(conv) in CONVOLUTIONS and type(bn) in BATCH_NORMS
        and calls[id(conv)] == calls[id(bn)] == 1
        and (key is None or uses[key] == 1)
        and _foldable(conv, bn)
    }


def _tensor_key(tensor):
    history = _keras_compat.tensor_history(tensor)
    return id(history.operation), history.node_index, history.tensor_index


def _foldable(conv, bn):
    rank = len(conv.kernel.shape)  # the output's rank too: batch, spatial axes, channels
    channel_axis = rank - 1 if conv.data_format == "channels_last" else 1
    return (
        conv.get_config()["activation"] == "linear"
        and not conv.lora_enabled
        and conv.quantization_mode is None
        and not bn.renorm
        and isinstance(bn.axis, int) and bn.axis % rank == channel_axis
    )


def folded_weights(conv, bn):
    """``[kernel, bias]`` of ``conv`` followed by ``bn`` in inference, as one convolution:
    float64 arithmetic, returned as float32 (assignment casts to the variables' dtype)."""

    def value(variable):
        return np.asarray(keras.ops.convert_to_numpy(variable), "float64")

    scale = 1.0 / np.sqrt(value(bn.moving_variance) + bn.epsilon)
    if bn.scale:
        scale = scale * value(bn.gamma)
    bias = value(conv.bias) if conv.use_bias else 0.0
    bias = (bias - value(bn.moving_mean)) * scale
    if bn.center:
        bias = bias + value(bn.beta)
    # The kernel's last axis is its output channels (Keras's (..., in / groups, out) layout).
    return [(value(conv.kernel) * scale).astype("float32"), bias.astype("float32")]


def _transfer(layer, new, bn=None):
    """Gives ``new`` (a clone of ``layer``) ``layer``'s weights, folding ``bn`` into them when
    given and the pairs of a composite layer whose clone is its folded form."""
    if bn is not None:
        new.set_weights(folded_weights(layer, bn))
        return
    if type(layer) not in COMPOSITES or layer.batch_norm == new.batch_norm:
        new.set_weights(layer.get_weights())
        return
    pairs = dict(COMPOSITES[type(layer)])
    old = {sub.name: sub for sub in _keras_compat.sublayers(layer, recursive=False)}
    targets = {sub.name: sub for sub in _keras_compat.sublayers(new, recursive=False)}
    for name, sub in old.items():
        if name not in pairs.values():
            _transfer(sub, targets[name], old[pairs[name]] if name in pairs else None)
