"""Facts every part of keras_drn shares, in one place.

- ``IMAGENET_MEAN`` / ``IMAGENET_STD``: per-channel statistics of 0-1 RGB ImageNet images,
  the normalisation every published DRN checkpoint expects (fyu/drn ``classify.py``).
- ``IGNORE_LABEL``: the mask value left out of losses and metrics (fyu/drn ``segment.py``).
- ``IMAGE_EXTENSIONS``: the image files the folder readers pick up (lower case).
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_LABEL = 255
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
