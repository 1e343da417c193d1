"""Facts every part of keras_drn shares, in one place.

- ``IMAGENET_MEAN`` / ``IMAGENET_STD``: per-channel statistics of 0-1 RGB ImageNet images,
  the normalisation every published DRN checkpoint expects (fyu/drn ``classify.py``).
- ``IGNORE_LABEL``: the mask value left out of losses and metrics (fyu/drn ``segment.py``).
- ``IMAGE_EXTENSIONS``: the image files the folder readers pick up (lower case).
- ``PARAMETERS``: each variant's parameter count (models/variants.py's table checks its
  builds against it; the weights bound the size of a checkpoint file by it).
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CITYSCAPES_MEAN = (0.290101, 0.328081, 0.286964)
CITYSCAPES_STD = (0.182954, 0.186566, 0.184475)
IGNORE_LABEL = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Trainable parameters of each DRN variant with 1000 classes, as the reference counts them
# (SPECS section 1); DRN-C-58 without the unused layer7.0 projection of the reference.
PARAMETERS = {
    "drn_a_18": 11_689_512,
    "drn_a_34": 21_797_672,
    "drn_a_50": 25_557_032,
    "drn_c_26": 21_126_584,
    "drn_c_42": 31_234_744,
    "drn_c_58": 40_542_008,
    "drn_d_22": 16_393_752,
    "drn_d_24": 21_114_392,
    "drn_d_38": 26_501_912,
    "drn_d_40": 31_222_552,
    "drn_d_54": 35_809_176,
    "drn_d_56": 40_529_816,
    "drn_d_105": 54_801_304,
    "drn_d_107": 59_521_944,
}
