"""The one module of keras_drn that reaches into private Keras.

Keras 3 has no public API for a few things keras_drn needs: walking the layers nested inside
composite layers, reading the graph a functional model recorded, resuming ``fit`` at an epoch
from a callback, and agreeing on one random seed across JAX processes. Each is reached here
through a small function saying what is missing and why it is needed; the rest of keras_drn,
its examples and tools use these functions or public APIs only (tests/test_keras_compat.py
checks both). A Keras release that moves a private piece then breaks this module alone: the
function raises ``PrivateKerasMissing`` naming itself, the piece and the Keras version, and its
test in tests/test_keras_compat.py fails the same way.

Written against Keras 3.15.
"""

import collections

import keras


class PrivateKerasMissing(RuntimeError):
    """A private piece of Keras that keras_drn relies on is gone from the installed Keras."""


def _missing(function, piece):
    return PrivateKerasMissing(
        f"keras_drn._keras_compat.{function} relies on {piece}, which Keras "
        f"{keras.__version__} does not have (keras_drn was written against Keras 3.15). "
        "Install a Keras release that has it, or update keras_drn/_keras_compat.py.")


def sublayers(layer, recursive=True):
    """Every layer tracked inside ``layer`` (not ``layer`` itself), parents before their
    children, each once; with ``recursive=False`` only its direct sublayers.

    Keras 3 lists a model's top-level layers (``Model.layers``) but has no public way to reach
    the layers inside a composite layer, such as the convolutions and BatchNormalization of a
    ``DilatedResidualBlock``. ``Layer._flatten_layers`` is the walk Keras itself uses for that
    (it tracks sublayers however they are held: attributes, lists, dicts).
    """
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(f"sublayers needs a keras.layers.Layer; received {type(layer).__name__}.")
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        raise _missing("sublayers", "Layer._flatten_layers")
    return flatten(include_self=False, recursive=recursive)


def _functional_class():
    try:
        from keras.src.models.functional import Functional
    except ImportError as error:
        raise _missing("is_functional", "keras.src.models.functional.Functional") from error
    return Functional


def is_functional(model):
    """Whether ``model`` is a functional model, ``keras.Model(inputs, outputs)`` (or a subclass
    of that class), whose graph Keras recorded.

    ``keras.Model(inputs, outputs)`` returns an instance of Keras's ``Functional`` class, which
    Keras does not export: nothing public tells such a model from a subclassed ``keras.Model``,
    whose graph is its Python code. ``keras.models.clone_model`` rebuilds exactly this class
    (and ``keras.Sequential``) as a graph.
    """
    return isinstance(model, _functional_class())


def nodes_by_depth(model):
    """``{depth: [node, ...]}`` of a functional model: every call of an operation its graph
    recorded (a layer called twice has two nodes), with ``node.operation``,
    ``node.input_tensors`` and ``node.is_input``.

    Keras 3 exposes a functional model's operations (``model.operations``) but not the calls
    linking them, which tell who consumes what (``fold_batch_norm`` folds a BatchNormalization
    only into a convolution whose output feeds nothing else).
    """
    nodes = getattr(model, "_nodes_by_depth", None)
    if nodes is None:
        if is_functional(model):
            raise _missing("nodes_by_depth", "Function._nodes_by_depth")
        raise ValueError(f"nodes_by_depth needs a functional model; received "
                         f"{type(model).__name__} {getattr(model, 'name', '')!r}.")
    return nodes


TensorHistory = collections.namedtuple("TensorHistory", "operation node_index tensor_index")


def tensor_history(tensor):
    """``TensorHistory(operation, node_index, tensor_index)`` of a symbolic tensor of a
    functional graph: the operation that produced it, which call of that operation
    (``operation``'s node), and which of that call's outputs it is.

    Keras records this on each ``KerasTensor`` as the private ``_keras_history`` and offers no
    public accessor; the triple identifies a tensor of the graph (to count its consumers) and
    its producer (the convolution before a BatchNormalization).
    """
    try:
        history = tensor._keras_history
    except AttributeError as error:
        raise _missing("tensor_history", "KerasTensor._keras_history") from error
    operation, node_index, tensor_index = history
    return TensorHistory(operation, node_index, tensor_index)


def set_initial_epoch(model, epoch):
    """Makes ``model.fit``, already running, start at ``epoch`` (0-based; ``None``: the
    ``initial_epoch`` given to ``fit``).

    Keras 3 has no public way for a callback to resume training at an epoch: its own
    ``BackupAndRestore`` sets the private ``model._initial_epoch`` in ``on_train_begin``,
    which ``fit`` reads right after, and so does ``keras_drn.workflows.runs``.
    """
    if not hasattr(model, "_initial_epoch"):
        raise _missing("set_initial_epoch", "Trainer._initial_epoch")
    model._initial_epoch = epoch


def initialize_jax_rng():
    """Gives every JAX process one global random seed when none is set, so that their initial
    weights agree: what ``keras.distribution.initialize`` does after joining the processes.

    ``keras_drn.workflows.distribute.initialize`` joins the processes itself (with its own timeouts
    and messages) and then needs this step alone, which Keras keeps private
    (``keras.src.backend.jax.distribution_lib``).
    """
    try:
        from keras.src.backend.jax import distribution_lib
    except ImportError as error:
        if not (error.name or "keras").startswith("keras"):
            raise  # JAX itself is missing, not a piece of Keras
        raise _missing("initialize_jax_rng",
                       "keras.src.backend.jax.distribution_lib") from error
    initialize = getattr(distribution_lib, "initialize_rng", None)
    if initialize is None:
        raise _missing("initialize_jax_rng",
                       "keras.src.backend.jax.distribution_lib.initialize_rng")
    initialize()
