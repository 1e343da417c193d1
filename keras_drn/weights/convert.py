"""Maps reference PyTorch state_dicts (fyu/drn ``drn.py`` and ``segment.py``, torchvision's
ResNet-50 for DRN-A-50) onto keras_drn models, by name.

keras_drn's layer names follow the reference's keys, so the mapping is a rule, not a table:
``layer3.0.conv1.weight`` -> layer ``layer3_0``, sublayer ``conv1``, kernel;
``layer0.1.running_var`` -> layer ``layer0_1`` (BatchNormalization), moving variance;
``layer3.0.downsample.0/1`` -> the block's ``downsample_conv``/``downsample_bn``;
``fc`` -> the Dense ``fc``; a segmentation checkpoint's ``base.N`` is renamed to the
backbone child it indexes, ``seg`` is the classifier and ``up`` the fixed bilinear kernel.
Conv kernels go from OIHW to HWIO.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

from keras_drn.layers.bilinear_upsampling import bilinear_kernel
from keras_drn.models.drn import VARIANTS

PARAMS = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
SUBLAYERS = {"downsample_0": "downsample_conv", "downsample_1": "downsample_bn"}
# segment.py's ``base`` is nn.Sequential(*list(drn.children())[:-2]): index -> child name.
BASE_CHILDREN = {
    "A": ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"],
    "C": ["conv1", "bn1", "relu"] + [f"layer{i}" for i in range(1, 9)],
    "D": [f"layer{i}" for i in range(0, 9)],
}
HEADS = ("fc", "seg")


def _rename_base(key, arch, depths):
    """``base.N.rest`` -> ``<child>.rest``; levels with no blocks are not children."""
    parts = key.split(".")
    children = [c for c in BASE_CHILDREN[arch]
                if not (arch != "A" and c.startswith("layer") and c != "layer0"
                        and depths[int(c[5:]) - 1] == 0)]
    index = int(parts[1])
    if index >= len(children):
        return None
    return ".".join([children[index]] + parts[2:])


def _resolve(model, key):
    """The (layer, weight index) a reference key names, or None."""
    parts = key.split(".")
    param, path = parts[-1], parts[:-1]
    if param not in PARAMS or not path:
        return None
    names = {layer.name for layer in model.layers}
    for take in (2, 1):
        name = "_".join(path[:take])
        if len(path) >= take and name in names:
            layer, rest = model.get_layer(name), path[take:]
            break
    else:
        return None
    if rest:
        attribute = "_".join(rest)
        layer = getattr(layer, SUBLAYERS.get(attribute, attribute), None)
        if layer is None or not hasattr(layer, "weights"):
            return None
    index = PARAMS[param]
    return (layer, index) if index < len(layer.weights) else None


def _to_keras(value, variable_shape):
    value = np.asarray(value)
    if value.ndim == 4 and len(variable_shape) == 4:
        return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if value.ndim in (2, 4) and len(variable_shape) == 2:
        return value.reshape(value.shape[0], -1).T  # (out, in[, 1, 1]) -> Dense (in, out)
    return value


def _is_unused_projection(model, key):
    """DRN-C-58's ``layer7.0.downsample``: built by the reference, never used (no residual)."""
    parts = key.split(".")
    if len(parts) < 4 or parts[2] != "downsample":
        return False
    name = f"{parts[0]}_{parts[1]}"
    if name not in {layer.name for layer in model.layers}:
        return False
    block = model.get_layer(name)
    return getattr(block, "residual", True) is False


def load_state_dict_into(model, state_dict, variant, origin="the checkpoint"):
    """Assigns a reference state_dict to ``model`` (a keras_drn classifier, backbone or
    DRNSegmenter of ``variant``), checking that everything matches.

    A missing or differently sized head (``fc``/``seg``: ``include_top=False`` or another
    number of classes) keeps its fresh initialisation, with a one-line message. Anything else
    missing, unexpected or of the wrong shape raises ValueError naming it.
    """
    spec = VARIANTS[variant]
    assigned, unexpected, mismatched, fresh_head = set(), [], [], set()
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked") or _is_unused_projection(model, key):
            continue
        name = _rename_base(key, spec.arch, spec.depths) if key.startswith("base.") else key
        if name == "up.weight":
            _check_up_kernel(value, origin)
            continue
        target = _resolve(model, name) if name else None
        head = name is not None and name.split(".")[0] in HEADS
        if target is None:
            if head:
                fresh_head.add(name.split(".")[0])
            else:
                unexpected.append(key)
            continue
        layer, index = target
        variable = layer.weights[index]
        converted = _to_keras(value, tuple(variable.shape))
        if tuple(converted.shape) != tuple(variable.shape):
            if head:
                fresh_head.add(name.split(".")[0])
                continue
            mismatched.append(f"{key}: {tuple(np.shape(value))} in the file, "
                              f"{tuple(variable.shape)} ({variable.path}) in the model")
            continue
        variable.assign(converted.astype(variable.dtype))
        assigned.add(variable.path)
    missing = [w.path for w in model.weights
               if w.path not in assigned and w.path.split("/")[0] not in fresh_head | set(HEADS)]
    missing_head = [w.path for w in model.weights
                    if w.path.split("/")[0] in HEADS and w.path not in assigned]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{origin} does not match {model.name!r} ({variant}). "
            f"Model weights missing from the file: {missing[:12] or 'none'}"
            f"{' ...' if len(missing) > 12 else ''}. "
            f"Unexpected keys in the file: {unexpected[:12] or 'none'}"
            f"{' ...' if len(unexpected) > 12 else ''}. "
            f"Shape mismatches: {mismatched or 'none'}. Is it a checkpoint of another "
            "architecture?"
        )
    if missing_head or fresh_head:
        heads = sorted({p.split("/")[0] for p in missing_head} | fresh_head)
        fresh = " and the model's head is freshly initialised for fine-tuning" if missing_head else ""
        print(f"keras_drn: loaded the {variant} backbone from {origin}; the checkpoint's "
              f"{'/'.join(heads)} classifier is not used{fresh}.")


def _check_up_kernel(value, origin):
    value = np.asarray(value, dtype="float32")
    expected = bilinear_kernel(value.shape[-1] // 2) if value.ndim == 4 else None
    if expected is None or not np.allclose(value, expected[None, None], atol=1e-6):
        raise ValueError(
            f"{origin}: 'up.weight' is not the fixed bilinear kernel of the reference "
            "(keras_drn's up layer is fixed); was it trained? Use upsampling='bilinear'."
        )


def is_segmentation_checkpoint(state_dict):
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
    from keras_drn.weights.torch_reader import load_state_dict

    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; valid names are {sorted(VARIANTS)}.")
    destination = os.fspath(destination)
    if not destination.endswith(".weights.h5"):
        raise ValueError(f"The destination must end with .weights.h5; received {destination!r}.")
    state_dict = load_state_dict(source)
    model = build_for_checkpoint(state_dict, variant)
    load_state_dict_into(model, state_dict, variant, origin=os.fspath(source))
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
    return model


def build_parser(parser=None):
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
    model = convert_checkpoint(args.source, args.destination, args.variant)
    print(f"wrote {args.destination}: {model.name}, {model.count_params():,} parameters")
    return 0


def main(argv=None):
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
