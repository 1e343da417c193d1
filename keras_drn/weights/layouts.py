"""The key layouts of PyTorch DRN checkpoints, as data, and their translation to the
reference's names (which keras_drn's layer names follow, see ``keras_drn.weights.convert``).

Layouts, detected from the keys:

- ``"reference"``: fyu/drn ``drn.py`` (``conv1.weight``, ``layer0.1.running_var``,
  ``layer3.0.downsample.0.weight``, ``fc.bias``) and torchvision's ResNet-50 (DRN-A-50).
- ``"segment"``: fyu/drn ``segment.py``'s DRNSeg: ``base.N.*`` (N indexes the reference
  model's children), ``seg.*`` (the 1x1 classifier), ``up.weight`` (the fixed bilinear kernel).
- ``"pytorchcv"``: imgclsmob's DRN-C/D (pip package pytorchcv, ``models/drn.py``):
  ``features.init_block.{conv,bn}``, ``features.stageS.unitU.{body,identity_conv}...``,
  ``output.*`` (the 1x1 classifier). Its unit order follows the reference's levels (a new
  stage at each stride-2 level, the others appended to the last stage); the model's variant
  table says which unit is which (``CheckpointNames.units``).

Keras models know nothing of these: ``keras_drn.models`` passes a ``CheckpointNames``.
"""

from dataclasses import dataclass

LAYOUTS = ("reference", "segment", "pytorchcv")


@dataclass(frozen=True)
class CheckpointNames:
    """What a model tells ``keras_drn.weights`` about its variant's checkpoints.

    ``variant``: its name; ``children``: the reference model's children in order (what
    segment.py's ``base.N`` indexes); ``stem``: the reference names of the stem's conv and BN
    (``("conv1", "bn1")`` or ``("layer0.0", "layer0.1")``); ``units``: pytorchcv's units in
    order as ``(pytorchcv prefix, kind, reference names)``: kind ``"block"`` (a residual or
    degridding block, reference names ``("layer5.0",)``) or ``"plain"`` (DRN-D's conv-BN-ReLU,
    reference names of its conv and BN, ``("layer1.0", "layer1.1")``); empty for DRN-A, which
    pytorchcv does not have.
    """

    variant: str
    children: tuple
    stem: tuple = ()
    units: tuple = ()


# pytorchcv module (relative to a unit) -> reference module, "{0}"/"{1}": the unit's names.
PYTORCHCV_UNIT_MODULES = {
    "block": {
        "body.conv1.conv": "{0}.conv1", "body.conv1.bn": "{0}.bn1",
        "body.conv2.conv": "{0}.conv2", "body.conv2.bn": "{0}.bn2",
        "body.conv3.conv": "{0}.conv3", "body.conv3.bn": "{0}.bn3",
        "identity_conv.conv": "{0}.downsample.0", "identity_conv.bn": "{0}.downsample.1",
    },
    "plain": {"body.conv": "{0}", "body.bn": "{1}"},
}
# pytorchcv modules outside the units; "{0}"/"{1}": the stem's conv and BN.
PYTORCHCV_MODULES = {"features.init_block.conv": "{0}", "features.init_block.bn": "{1}",
                     "output": "fc"}


def detect_layout(state_dict):
    """``"pytorchcv"``, ``"segment"`` or ``"reference"``, from the keys of ``state_dict``."""
    if any(key.startswith(("features.", "output.")) for key in state_dict):
        return "pytorchcv"
    if any(key.startswith(("base.", "seg.")) for key in state_dict):
        return "segment"
    return "reference"


def pytorchcv_modules(names):
    """Every pytorchcv module of ``names``'s variant -> its reference module."""
    table = {key: value.format(*names.stem) for key, value in PYTORCHCV_MODULES.items()}
    for prefix, kind, reference in names.units:
        for module, target in PYTORCHCV_UNIT_MODULES[kind].items():
            table[f"{prefix}.{module}"] = target.format(*reference)
    return table


def reference_names(state_dict, names):
    """``{file key: reference key or None}`` for every key of ``state_dict`` (None: the key
    means nothing in this variant), in file order, and the detected layout."""
    layout = detect_layout(state_dict)
    if layout == "reference":
        return {key: key for key in state_dict}, layout
    if layout == "segment":
        return {key: _segment_name(key, names.children) for key in state_dict}, layout
    modules = pytorchcv_modules(names)
    result = {}
    for key in state_dict:
        module, _, param = key.rpartition(".")
        result[key] = f"{modules[module]}.{param}" if module in modules else None
    return result, layout


def _segment_name(key, children):
    """segment.py's ``base.N.rest`` -> ``<child N>.rest``; ``seg.*``/``up.*`` are kept."""
    parts = key.split(".")
    if parts[0] != "base":
        return key
    if len(parts) < 3 or not parts[1].isdigit() or int(parts[1]) >= len(children):
        return None
    return ".".join([children[int(parts[1])]] + parts[2:])
