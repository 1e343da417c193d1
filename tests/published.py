"""Numbers from the DRN paper and the reference code (github fyu/drn), typed in by hand so the
tests never compare keras_drn with its own tables: trainable parameters with 1000 classes (as
the reference counts them; DRN-C-58 without the projection its forward pass never uses) and
blocks per level, and which variants use the Bottleneck block (the others use BasicBlock)."""

PARAMETERS = {
    "drn_a_18": 11_689_512, "drn_a_34": 21_797_672, "drn_a_50": 25_557_032,
    "drn_c_26": 21_126_584, "drn_c_42": 31_234_744, "drn_c_58": 40_542_008,
    "drn_d_22": 16_393_752, "drn_d_24": 21_114_392, "drn_d_38": 26_501_912,
    "drn_d_40": 31_222_552, "drn_d_54": 35_809_176, "drn_d_56": 40_529_816,
    "drn_d_105": 54_801_304, "drn_d_107": 59_521_944,
}
DEPTHS = {
    "drn_a_18": (2, 2, 2, 2), "drn_a_34": (3, 4, 6, 3), "drn_a_50": (3, 4, 6, 3),
    "drn_c_26": (1, 1, 2, 2, 2, 2, 1, 1), "drn_c_42": (1, 1, 3, 4, 6, 3, 1, 1),
    "drn_c_58": (1, 1, 3, 4, 6, 3, 1, 1), "drn_d_22": (1, 1, 2, 2, 2, 2, 1, 1),
    "drn_d_24": (1, 1, 2, 2, 2, 2, 2, 2), "drn_d_38": (1, 1, 3, 4, 6, 3, 1, 1),
    "drn_d_40": (1, 1, 3, 4, 6, 3, 2, 2), "drn_d_54": (1, 1, 3, 4, 6, 3, 1, 1),
    "drn_d_56": (1, 1, 3, 4, 6, 3, 2, 2), "drn_d_105": (1, 1, 3, 4, 23, 3, 1, 1),
    "drn_d_107": (1, 1, 3, 4, 23, 3, 2, 2),
}
BOTTLENECK = {"drn_a_50", "drn_c_58", "drn_d_54", "drn_d_56", "drn_d_105", "drn_d_107"}
