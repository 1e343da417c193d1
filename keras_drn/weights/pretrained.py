"""The official ImageNet checkpoints: where they live, how they are checked and cached.

``weights="imagenet"`` downloads the reference's PyTorch file with ``keras.utils.get_file``
into the Keras cache (``$KERAS_HOME/keras_drn``, default ``~/.keras/keras_drn``), checks that
its SHA-256 starts with the 8 hex digits of its name, converts it, and caches the converted
``<variant>_imagenet.weights.h5`` beside it: later calls need neither network nor conversion.
A mirror can replace the download base: the ``base_url`` argument or ``KERAS_DRN_WEIGHTS_URL``.
"""

import hashlib
import os
import uuid
from dataclasses import dataclass

import keras

DRN_BASE_URL = "http://dl.yf.io/drn/"
TORCHVISION_BASE_URL = "https://download.pytorch.org/models/"
MIRROR_ENV = "KERAS_DRN_WEIGHTS_URL"
CACHE_SUBDIR = "keras_drn"


@dataclass(frozen=True)
class Checkpoint:
    """An official checkpoint: file name (its 8 hex digits start its SHA-256) and base URL.
    The preprocessing travels with it: 0-1 RGB, then ImageNet mean/std normalisation."""

    file_name: str
    base_url: str
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)

    @property
    def sha256_prefix(self):
        return self.file_name.rsplit("-", 1)[1].split(".")[0]


CHECKPOINTS = {
    "drn_a_50": Checkpoint("resnet50-19c8e357.pth", TORCHVISION_BASE_URL),
    "drn_c_26": Checkpoint("drn_c_26-ddedf421.pth", DRN_BASE_URL),
    "drn_c_42": Checkpoint("drn_c_42-9d336e8c.pth", DRN_BASE_URL),
    "drn_c_58": Checkpoint("drn_c_58-0a53a92c.pth", DRN_BASE_URL),
    "drn_d_22": Checkpoint("drn_d_22-4bd2f8ea.pth", DRN_BASE_URL),
    "drn_d_38": Checkpoint("drn_d_38-eebb45f0.pth", DRN_BASE_URL),
    "drn_d_54": Checkpoint("drn_d_54-0e0534ff.pth", DRN_BASE_URL),
    "drn_d_105": Checkpoint("drn_d_105-12b40979.pth", DRN_BASE_URL),
}


def checkpoint_for(variant):
    """The table entry of ``variant``; ValueError listing the variants that have one."""
    if variant not in CHECKPOINTS:
        raise ValueError(
            f"There is no official ImageNet checkpoint for {variant!r}; variants with one: "
            f"{sorted(CHECKPOINTS)}. Use weights=None or the path to your own weights file."
        )
    return CHECKPOINTS[variant]


def cache_dir():
    """``$KERAS_HOME/keras_drn`` (default ``~/.keras/keras_drn``), read at each call."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, CACHE_SUBDIR)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_url(variant, base_url=None):
    """Where the checkpoint of ``variant`` is downloaded from: ``base_url``, else
    ``$KERAS_DRN_WEIGHTS_URL``, else the official base, followed by the file name."""
    checkpoint = checkpoint_for(variant)
    base = base_url or os.environ.get(MIRROR_ENV) or checkpoint.base_url
    url = base.rstrip("/") + "/" + checkpoint.file_name
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"Weights are downloaded over http(s) only; received {url!r}.")
    return url


def download_checkpoint(variant, base_url=None):
    """Downloads (or finds in the cache) the official checkpoint of ``variant``. Returns its
    path in the cache.

    The download goes to a temporary name unique to this call (``keras.utils.get_file``
    writes the file as it arrives) and is renamed to the checkpoint's name only after its
    SHA-256 matches; a file that fails the check is deleted. So a second process loading the
    same weights at the same time never sees a partial or unchecked file under the real name:
    it finds a checked one, or downloads its own copy.
    """
    checkpoint = checkpoint_for(variant)
    url = checkpoint_url(variant, base_url)
    directory = cache_dir()
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, checkpoint.file_name)
    if os.path.isfile(final) and _sha256(final).startswith(checkpoint.sha256_prefix):
        return final
    partial = f".{checkpoint.file_name}.{uuid.uuid4().hex}.part"
    try:
        path = keras.utils.get_file(
            partial, url, cache_subdir=CACHE_SUBDIR, cache_dir=os.path.dirname(directory)
        )
    except Exception as error:  # get_file raises a bare Exception (and deletes partial files)
        _remove(os.path.join(directory, partial))
        raise OSError(
            f"Could not download the {variant} checkpoint from {url} ({error}). Check the "
            f"connection, or set {MIRROR_ENV} to a mirror that serves {checkpoint.file_name}."
        ) from error
    try:
        actual = _sha256(path)
        if not actual.startswith(checkpoint.sha256_prefix):
            raise ValueError(
                f"The file downloaded from {url} has SHA-256 {actual}, which does not start "
                f"with {checkpoint.sha256_prefix} as its name says: corrupt or not the official "
                "checkpoint. It was deleted; try again or check the mirror."
            )
        os.replace(path, final)
    finally:
        _remove(path)
    return final


def _remove(path):
    if os.path.exists(path):
        os.unlink(path)


def imagenet_weights(variant, base_url=None):
    """Path of the converted ``.weights.h5`` of the 1000-class ``variant`` classifier,
    downloading and converting on first use."""
    from keras_drn.weights.convert import convert_checkpoint

    converted = os.path.join(cache_dir(), f"{variant}_imagenet.weights.h5")
    if os.path.isfile(converted):
        return converted
    source = download_checkpoint(variant, base_url)
    convert_checkpoint(source, converted, variant)
    return converted
