"""Maps PyTorch DRN state_dicts onto keras_drn models, by name.

Keys are first translated to the reference's names (fyu/drn ``drn.py``;
``keras_drn.weights.layouts`` does segment.py's and pytorchcv's layouts). keras_drn's layer
names follow the reference's keys, so from there the mapping is a rule, not a table:
``layer3.0.conv1.weight`` -> layer ``layer3_0``, sublayer ``conv1``, kernel;
``layer0.1.running_var`` -> layer ``layer0_1`` (BatchNormalization), moving variance;
``layer3.0.downsample.0/1`` -> the block's ``downsample_conv``/``downsample_bn``;
``fc`` -> the Dense ``fc``, ``seg`` the segmenter's classifier, ``up`` the fixed bilinear
kernel (checked, not loaded). Conv kernels go from OIHW to HWIO. ``state_dict_to_model`` is
the mapping (the ``keras-drn convert`` command, in ``keras_drn.cli``, builds the model).
"""

import re
from dataclasses import dataclass, field

import numpy as np

from keras_drn.layers.bilinear_upsampling import bilinear_kernel
from keras_drn.weights.layouts import reference_names

PARAMS = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
SUBLAYERS = {"downsample_0": "downsample_conv", "downsample_1": "downsample_bn"}
HEADS = ("fc", "seg")


def _layer(model, name):
    return model.get_layer(name) if name in {layer.name for layer in model.layers} else None


def _resolve(model, name):
    """The model variable a reference name designates, or None.

    ``layer3.0.conv1.weight`` -> layer ``layer3_0``, attribute ``conv1``, weight 0;
    ``layer0.1.running_var`` -> layer ``layer0_1``, weight 3; ``fc.bias`` -> ``fc``, weight 1.
    """
    parts = name.split(".")
    param, path = parts[-1], parts[:-1]
    if param not in PARAMS or not path:
        return None
    for take in (2, 1):
        layer = _layer(model, "_".join(path[:take])) if len(path) >= take else None
        if layer is not None:
            break
    else:
        return None
    rest = "_".join(path[take:])
    if rest:
        layer = getattr(layer, SUBLAYERS.get(rest, rest), None)
        if not hasattr(layer, "weights"):
            return None
    index = PARAMS[param]
    return layer.weights[index] if index < len(layer.weights) else None


def _to_keras(value, variable_shape):
    """A reference array in the layout of a Keras variable of ``variable_shape``."""
    value = np.asarray(value)
    if value.ndim == 4 and len(variable_shape) == 4:
        return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if value.ndim in (2, 4) and len(variable_shape) == 2:
        return value.reshape(value.shape[0], -1).T  # (out, in[, 1, 1]) -> Dense (in, out)
    return value


def _is_skipped(model, name):
    """The projection of a block without residual (DRN-C-58's ``layer7.0.downsample``: built
    by the reference, never used by its forward pass)."""
    parts = name.split(".")
    if len(parts) < 4 or parts[2] != "downsample":
        return False
    block = _layer(model, f"{parts[0]}_{parts[1]}")
    return block is not None and getattr(block, "residual", True) is False


def _head(name):
    """The classifier (``fc``/``seg``) a key or variable path belongs to, or None."""
    first = re.split(r"[./]", name, maxsplit=1)[0]
    return first if first in HEADS else None


@dataclass
class _Plan:
    """What a state_dict does to a model: (variable, value) pairs to assign, file keys the
    model lacks, shape mismatches, and checkpoint classifiers that do not fit the model."""

    assignments: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)
    unused_heads: set = field(default_factory=set)


def _plan(state_dict, model, names, origin):
    plan = _Plan()
    translated, _ = reference_names(state_dict, names)
    for key, value in state_dict.items():
        name = translated[key]
        if key.endswith("num_batches_tracked") or (name and _is_skipped(model, name)):
            continue
        if name == "up.weight":
            _check_up_kernel(value, origin)
            continue
        variable = _resolve(model, name) if name else None
        converted = None if variable is None else _to_keras(value, tuple(variable.shape))
        if converted is not None and converted.shape == tuple(variable.shape):
            plan.assignments.append((variable, converted))
        elif name is not None and _head(name):
            plan.unused_heads.add(_head(name))
        elif variable is None:
            plan.unexpected.append(key)
        else:
            plan.mismatched.append(f"{key}: {tuple(np.shape(value))} in the file, "
                                   f"{tuple(variable.shape)} ({variable.path}) in the model")
    return plan


def _listing(names, limit=12):
    return f"{names[:limit]}{' ...' if len(names) > limit else ''}" if names else "none"


def state_dict_to_model(state_dict, model, names, origin="the checkpoint"):
    """Assigns a PyTorch DRN state_dict (``{key: array}``, PyTorch layouts; any layout of
    ``keras_drn.weights.layouts``) to ``model``, a keras_drn classifier, backbone or
    DRNSegmenter whose checkpoint names are ``names`` (a ``CheckpointNames``), checking
    everything first. Returns the notes to print (empty when every weight was loaded).

    A classifier (``fc``/``seg``) that the model lacks (``include_top=False``) or that has
    another number of classes is not used: the model keeps its fresh head, and a note says
    so. Raises ValueError, before assigning anything, naming the model weights missing from
    the file, the file keys the model lacks (except ``num_batches_tracked`` and DRN-C-58's
    unused ``layer7.0.downsample``) and the shape mismatches (key, file shape, model shape).
    """
    plan = _plan(state_dict, model, names, origin)
    assigned = {variable.path for variable, _ in plan.assignments}
    unassigned = [w.path for w in model.weights if w.path not in assigned]
    missing = [path for path in unassigned if not _head(path)]
    if missing or plan.unexpected or plan.mismatched:
        raise ValueError(
            f"{origin} does not match {model.name!r} ({names.variant}). "
            f"Model weights missing from the file: {_listing(missing)}. "
            f"Unexpected keys in the file: {_listing(plan.unexpected)}. "
            f"Shape mismatches: {_listing(plan.mismatched)}. Is it a checkpoint of another "
            "architecture?"
        )
    for variable, value in plan.assignments:
        variable.assign(value.astype(variable.dtype))
    fresh = sorted({_head(path) for path in unassigned})
    notes = [f"the checkpoint's {name} classifier is not used"
             for name in sorted(plan.unused_heads)]
    return notes + [f"the model's {name} head is freshly initialised" for name in fresh]


def _check_up_kernel(value, origin):
    """segment.py's ``up`` is a fixed bilinear kernel; keras_drn's cannot be loaded, only
    checked: a trained one is refused."""
    value = np.asarray(value, dtype="float32")
    expected = bilinear_kernel(value.shape[-1] // 2) if value.ndim == 4 else None
    if expected is None or not np.allclose(value, expected[None, None], atol=1e-6):
        raise ValueError(
            f"{origin}: 'up.weight' is not the fixed bilinear kernel of the reference "
            "(keras_drn's up layer is fixed); was it trained? Use upsampling='bilinear'."
        )
