"""Facts every part of keras_drn shares, in one place.

- ``IMAGENET_MEAN`` / ``IMAGENET_STD``: per-channel statistics of 0-1 RGB ImageNet images,
  the normalisation every published DRN checkpoint expects (fyu/drn ``classify.py``).
- ``IGNORE_LABEL``: the mask value left out of losses and metrics (fyu/drn ``segment.py``).
- ``IMAGE_EXTENSIONS``: the image files the folder readers pick up (lower case).
- ``PARAMETERS``: each variant's parameter count (models/variants.py's table checks its
  builds against it; the weights bound the size of a checkpoint file by it).
- The choice names the ``keras-drn`` command offers before it imports Keras: ``HEADS``,
  ``CONTEXTS``, ``UPSAMPLINGS`` (the registries of ``keras_drn.models.heads``),
  ``ANTI_ALIAS`` (``keras_drn.layers.dilated_residual``), ``DTYPE_POLICIES``
  (``keras_drn.workflows.precision``); tests/test_constants.py checks they are the
  registries' own.
- ``REFERENCE_*``: the reference ``segment.py``'s SGD (``keras_drn.workflows.training``).
- ``HEARTBEAT_TIMEOUT``, ``INIT_TIMEOUT``, ``SHUTDOWN_TIMEOUT``: seconds of a job of several
  processes (``keras_drn.workflows.distribute``, which explains each).
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

HEADS = ("drn", "gcn")
CONTEXTS = ("parsenet",)
UPSAMPLINGS = ("deconv", "bilinear")
ANTI_ALIAS = (None, "blur", "adaptive")
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")

# torch.optim.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4) of fyu/drn segment.py.
REFERENCE_LEARNING_RATE = 0.01
REFERENCE_MOMENTUM = 0.9
REFERENCE_WEIGHT_DECAY = 1e-4

# Seconds. JAX's coordination service declares a process dead after this long without a
# heartbeat (jax.distributed.initialize's heartbeat_timeout_seconds, 100 there as here); the
# others then abort with "Terminating process because the JAX distributed service detected
# fatal errors". A process that dies mid-step is noticed sooner: its peers' gloo collective
# fails at once ("Connection closed by peer").
HEARTBEAT_TIMEOUT = 100
# Seconds a process waits at exit for the others (JAX's default is 300). Long, because the
# other processes wait there while the chief scores the final model on the validation split.
SHUTDOWN_TIMEOUT = 3600
# Seconds a process waits for every process of the job to join (JAX's
# initialization_timeout, 300 there as here). Then it gives up with a message naming whom it
# waited for, instead of JAX's abort ("another task died") after a silent wait.
INIT_TIMEOUT = 300
