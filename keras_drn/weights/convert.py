"""Maps reference PyTorch state_dicts (fyu/drn ``drn.py`` and ``segment.py``, torchvision's
ResNet-50 for DRN-A-50) onto keras_drn models, by name.

keras_drn's layer names follow the reference's keys, so the mapping is a rule, not a table:
``layer3.0.conv1.weight`` -> layer ``layer3_0``, sublayer ``conv1``, kernel;
``layer0.1.running_var`` -> layer ``layer0_1`` (BatchNormalization), moving variance;
``layer3.0.downsample.0/1`` -> the block's ``downsample_conv``/``downsample_bn``;
``fc`` -> the Dense ``fc``; a segmentation checkpoint's ``base.N`` is renamed to the
backbone child it indexes, ``seg`` is the classifier and ``up`` the fixed bilinear kernel.
Conv kernels go from OIHW to HWIO. ``state_dict_to_model`` is the mapping,
``convert_checkpoint`` (and the ``main`` CLI) writes a ``.weights.h5`` file once for all.
"""

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np

from keras_drn.layers.bilinear_upsampling import bilinear_kernel
from keras_drn.models.drn import VARIANTS
from keras_drn.weights.torch_reader import load_state_dict

PARAMS = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
SUBLAYERS = {"downsample_0": "downsample_conv", "downsample_1": "downsample_bn"}
# segment.py's ``base`` is nn.Sequential(*list(drn.children())[:-2]): index -> child name.
BASE_CHILDREN = {
    "A": ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"],
    "C": ["conv1", "bn1", "relu"] + [f"layer{i}" for i in range(1, 9)],
    "D": [f"layer{i}" for i in range(9)],
}
HEADS = ("fc", "seg")


def _reference_name(key, spec):
    """The classifier-checkpoint name of ``key``: segment.py's ``base.N.rest`` becomes
    ``<child N>.rest`` (None when N indexes nothing; levels without blocks are not children),
    other keys are kept."""
    parts = key.split(".")
    if parts[0] != "base":
        return key
    children = [c for c in BASE_CHILDREN[spec.arch]
                if not (spec.arch != "A" and c.startswith("layer") and c != "layer0"
                        and spec.depths[int(c[5:]) - 1] == 0)]
    if len(parts) < 3 or not parts[1].isdigit() or int(parts[1]) >= len(children):
        return None
    return ".".join([children[int(parts[1])]] + parts[2:])


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
    """``num_batches_tracked``, and the projection of a block without residual (DRN-C-58's
    ``layer7.0.downsample``: built by the reference, never used by its forward pass)."""
    if name.endswith("num_batches_tracked"):
        return True
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


def _plan(state_dict, model, spec, origin):
    plan = _Plan()
    for key, value in state_dict.items():
        name = _reference_name(key, spec)
        if name is not None and _is_skipped(model, name):
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


def state_dict_to_model(state_dict, model, variant, origin="the checkpoint"):
    """Assigns a reference state_dict (``{key: array}``, PyTorch layouts) to ``model``, a
    keras_drn classifier, backbone or DRNSegmenter of ``variant``, checking everything first.

    A classifier (``fc``/``seg``) that the model lacks (``include_top=False``) or that has
    another number of classes is not used: the model keeps its fresh head, and one line says
    so. Raises ValueError, before assigning anything, naming the model weights missing from
    the file, the file keys the model lacks (except ``num_batches_tracked`` and DRN-C-58's
    unused ``layer7.0.downsample``) and the shape mismatches (key, file shape, model shape).
    """
    plan = _plan(state_dict, model, VARIANTS[variant], origin)
    assigned = {variable.path for variable, _ in plan.assignments}
    unassigned = [w.path for w in model.weights if w.path not in assigned]
    missing = [path for path in unassigned if not _head(path)]
    if missing or plan.unexpected or plan.mismatched:
        raise ValueError(
            f"{origin} does not match {model.name!r} ({variant}). "
            f"Model weights missing from the file: {_listing(missing)}. "
            f"Unexpected keys in the file: {_listing(plan.unexpected)}. "
            f"Shape mismatches: {_listing(plan.mismatched)}. Is it a checkpoint of another "
            "architecture?"
        )
    for variable, value in plan.assignments:
        variable.assign(value.astype(variable.dtype))
    _report_fresh_head(plan.unused_heads, {_head(path) for path in unassigned}, variant, origin)


def _report_fresh_head(unused, fresh, variant, origin):
    """One line when a classifier was left out: the file's that does not fit the model
    (``unused``), and the model's that keeps its initialisation (``fresh``)."""
    notes = [f"the checkpoint's {name} classifier is not used" for name in sorted(unused)]
    notes += [f"the model's {name} head is freshly initialised" for name in sorted(fresh)]
    if notes:
        print(f"keras_drn: loaded the {variant} backbone from {origin}; {'; '.join(notes)}.")


def load_checkpoint(model, path, variant):
    """Reads a reference PyTorch checkpoint (numpy only) and assigns it with
    ``state_dict_to_model``."""
    state_dict_to_model(load_state_dict(path), model, variant, origin=os.fspath(path))


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


def is_segmentation_checkpoint(state_dict):
    """Whether a state_dict comes from segment.py's DRNSeg (``base.*``, ``seg.*``)."""
    return any(key.startswith(("base.", "seg.")) for key in state_dict)


def build_for_checkpoint(state_dict, variant):
    """A keras_drn model shaped like the checkpoint: a segmenter for ``segment.py`` files,
    else a classifier with the checkpoint's number of classes."""
    import keras_drn

    if is_segmentation_checkpoint(state_dict):
        classes = int(np.shape(state_dict["seg.weight"])[0])
        return keras_drn.DRNSegmenter(variant, num_classes=classes)
    if "fc.weight" in state_dict:
        classes = int(np.shape(state_dict["fc.weight"])[0])
        return keras_drn.get_model(variant, classes=classes)
    return keras_drn.get_model(variant, include_top=False)


def convert_checkpoint(source, destination, variant):
    """Converts a reference PyTorch checkpoint to a Keras ``.weights.h5`` file, atomically.

    The result loads with ``weights=destination`` into the same model: ``DRNSegmenter(
    variant, num_classes=...)`` for a segmentation checkpoint, else ``get_model(variant,
    classes=...)`` (or ``include_top=False`` when the file has no ``fc``).
    Returns the built model.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; valid names are {sorted(VARIANTS)}.")
    destination = os.fspath(destination)
    if not destination.endswith(".weights.h5"):
        raise ValueError(f"The destination must end with .weights.h5; received {destination!r}.")
    state_dict = load_state_dict(source)
    model = build_for_checkpoint(state_dict, variant)
    state_dict_to_model(state_dict, model, variant, origin=os.fspath(source))
    _save_weights_atomically(model, destination)
    return model


def _save_weights_atomically(model, destination):
    """Writes a temporary file in the destination's folder, then renames it: a crash or a
    concurrent reader never sees a half-written ``destination``."""
    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".weights.h5", dir=directory)
    os.close(handle)
    try:
        model.save_weights(temporary, overwrite=True)
        os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def build_parser(parser=None):
    """The converter's arguments, added to ``parser`` (``keras-drn convert``) or to a new
    stand-alone parser (``tools/convert_weights.py``)."""
    parser = parser or argparse.ArgumentParser(
        prog="convert_weights",
        description="Convert an official DRN PyTorch checkpoint (drn.py or segment.py, zip or "
        "legacy format; PyTorch not needed) into a Keras .weights.h5 file.",
    )
    parser.add_argument("source", help="the .pth/.pt checkpoint")
    parser.add_argument("destination", help="the .weights.h5 file to write")
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS),
                        help="the architecture of the checkpoint")
    return parser


def run(args):
    """Converts as parsed by ``build_parser``; prints what was written; returns 0."""
    model = convert_checkpoint(args.source, args.destination, args.variant)
    print(f"wrote {args.destination}: {model.name}, {model.count_params():,} parameters")
    return 0


def main(argv=None):
    """``python tools/convert_weights.py SRC.pth DST.weights.h5 --variant drn_c_26``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
