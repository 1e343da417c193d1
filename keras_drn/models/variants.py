"""The DRN family as data: one row per variant, one row per level (Yu, Koltun, Funkhouser,
"Dilated Residual Networks", CVPR 2017, table 1 and the official code, github fyu/drn
``drn.py``).

Everything else reads these tables: ``models/drn.py`` builds from them, ``models/registry.py``
documents and counts from them, ``models/segmenter.py`` takes its GCN taps from them,
``feature_model`` describes levels with them, and the checkpoint names (the reference's
children, pytorchcv's stages) are passed from them to ``keras_drn.weights``. No code here.
"""

from dataclasses import dataclass

from keras_drn.constants import PARAMETERS  # noqa: F401  (read with the variant table)


@dataclass(frozen=True)
class DRNVariant:
    """One row of the variant table: ``arch`` "A", "C" or "D", block kind, depth per level."""

    name: str
    arch: str
    block: str
    depths: tuple


@dataclass(frozen=True)
class Level:
    """One level of an architecture.

    ``channels``: planes (a bottleneck level outputs 4x that), ``stride`` of its first unit,
    ``dilation``, ``unit``: "early" (levels 1-2: residual basic blocks in C, conv-BN-ReLU in
    D), "block" (the variant's block) or "degrid" (levels 7-8: basic blocks without residual
    in C, plain convs in D), ``reduction``: the output stride of the level's output, and
    ``pytorchcv_stage``: the ``features.stageN`` of pytorchcv's DRN that holds its units
    (pytorchcv opens a stage at every stride-2 level and appends the others to the last).
    ``first_dilation``: the dilation of the level's first unit (DRN-A: as in the reference, 1
    even in dilated levels; DRN-C/D: the level's).
    """

    number: int
    channels: int
    stride: int
    dilation: int
    first_dilation: int
    unit: str
    reduction: int
    pytorchcv_stage: int = 0


VARIANTS = {
    v.name: v
    for v in (
        DRNVariant("drn_a_18", "A", "basic", (2, 2, 2, 2)),
        DRNVariant("drn_a_34", "A", "basic", (3, 4, 6, 3)),
        DRNVariant("drn_a_50", "A", "bottleneck", (3, 4, 6, 3)),
        DRNVariant("drn_c_26", "C", "basic", (1, 1, 2, 2, 2, 2, 1, 1)),
        DRNVariant("drn_c_42", "C", "basic", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_c_58", "C", "bottleneck", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_d_22", "D", "basic", (1, 1, 2, 2, 2, 2, 1, 1)),
        DRNVariant("drn_d_24", "D", "basic", (1, 1, 2, 2, 2, 2, 2, 2)),
        DRNVariant("drn_d_38", "D", "basic", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_d_40", "D", "basic", (1, 1, 3, 4, 6, 3, 2, 2)),
        DRNVariant("drn_d_54", "D", "bottleneck", (1, 1, 3, 4, 6, 3, 1, 1)),
        DRNVariant("drn_d_56", "D", "bottleneck", (1, 1, 3, 4, 6, 3, 2, 2)),
        DRNVariant("drn_d_105", "D", "bottleneck", (1, 1, 3, 4, 23, 3, 1, 1)),
        DRNVariant("drn_d_107", "D", "bottleneck", (1, 1, 3, 4, 23, 3, 2, 2)),
    )
}

CD_LEVELS = (
    Level(1, 16, 1, 1, 1, "early", 1, pytorchcv_stage=1),
    Level(2, 32, 2, 1, 1, "early", 2, pytorchcv_stage=2),
    Level(3, 64, 2, 1, 1, "block", 4, pytorchcv_stage=3),
    Level(4, 128, 2, 1, 1, "block", 8, pytorchcv_stage=4),
    Level(5, 256, 1, 2, 2, "block", 8, pytorchcv_stage=4),
    Level(6, 512, 1, 4, 4, "block", 8, pytorchcv_stage=4),
    Level(7, 512, 1, 2, 2, "degrid", 8, pytorchcv_stage=4),
    Level(8, 512, 1, 1, 1, "degrid", 8, pytorchcv_stage=4),
)
# DRN-A levels follow a ResNet stem (7x7 stride-2 conv, 3x3 stride-2 max pooling).
A_LEVELS = (
    Level(1, 64, 1, 1, 1, "block", 4),
    Level(2, 128, 2, 1, 1, "block", 8),
    Level(3, 256, 1, 2, 1, "block", 8),
    Level(4, 512, 1, 4, 1, "block", 8),
)
LEVELS = {"A": A_LEVELS, "C": CD_LEVELS, "D": CD_LEVELS}

# The stem's (conv, bn, relu) names in the reference's state_dict and in keras_drn's models.
STEM = {"A": ("conv1", "bn1", "relu"), "C": ("conv1", "bn1", "relu"),
        "D": ("layer0.0", "layer0.1", "layer0.2")}
# The reference model's children in order (segment.py's ``base`` indexes them); DRN-C/D's
# levels without blocks are not children.
CHILDREN = {
    "A": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
    "C": ("conv1", "bn1", "relu") + tuple(f"layer{n}" for n in range(1, 9)),
    "D": tuple(f"layer{n}" for n in range(9)),
}

# GCN taps (level, output stride): DRN-C/D: ends of levels 2, 3, 4 and the last level;
# DRN-A: 1, 2, 4 (Peng et al. 2017, section 3.3, applied to DRN's levels).
GCN_TAPS = {"A": ((1, 4), (2, 8), (4, 8)), "C": ((2, 2), (3, 4), (4, 8), (8, 8)),
            "D": ((2, 2), (3, 4), (4, 8), (8, 8))}

