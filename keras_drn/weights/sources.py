"""Where pretrained DRN ImageNet weights live, as data: one row per (variant, source).

Sources (``weights="imagenet:<source>"``):

- ``"official"``: the files the reference code (github fyu/drn, ``drn.py``) names:
  ``http://dl.yf.io/drn/<variant>-<8 hex>.pth`` (the 8 hex digits start the file's SHA-256),
  and torchvision's ResNet-50 for DRN-A-50, as the reference loads it. The host dl.yf.io has
  not answered since 2022 (fyu/drn issue 45); a mirror serving the same names still works.
- ``"imgclsmob"``: the DRN-C/D files that the imgclsmob project (pip package pytorchcv, MIT)
  publishes as GitHub release assets, listed in pytorchcv 0.0.74's
  ``models/common/model_metainfos.csv``: ``<name>-<error>-<sha1[:8]>.pth.zip`` holding
  ``<name>-<error>-<sha1[:8]>.pth`` (SHA-1 of the ``.pth``), in pytorchcv's own key layout.

``weights="imagenet"`` takes the first row of a variant: imgclsmob where it has the variant
(its host answers and its files are more accurate than the official ones: lower top-5 error
at the same 224 center crop), else official. Every file expects RGB scaled to 0-1, then
normalised with ImageNet's mean/std, at 224x224 (imgclsmob evaluates a 224 center crop of the
image resized by 1 / 0.875, the reference a 224 crop of a 256 resize: the same ratio).

``STATISTICS`` holds the normalisation of each dataset weights were trained on (ImageNet for
every row here, Cityscapes for the reference's segmenters, ``segment.py``); each row carries
its own ``mean``/``std``, and ``statistics(weights, variant)`` reads them for a weights name:
what ``include_preprocessing`` puts into a model and ``keras_drn.preprocess_input`` applies.
"""

from dataclasses import dataclass

from keras_drn.constants import (
    CITYSCAPES_MEAN,
    CITYSCAPES_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PARAMETERS,
)

DEFAULT = "imagenet"
# Per-channel (mean, std) of 0-1 RGB images of the dataset weights were trained on.
STATISTICS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "cityscapes": (CITYSCAPES_MEAN, CITYSCAPES_STD),
}


@dataclass(frozen=True)
class Source:
    """A host of weights files: its name, its mirror variable, and what it is."""

    name: str
    mirror_env: str
    description: str


SOURCES = {
    s.name: s
    for s in (
        Source("imgclsmob", "KERAS_DRN_IMGCLSMOB_URL",
               "imgclsmob/pytorchcv release assets on github.com (pytorchcv key layout)"),
        Source("official", "KERAS_DRN_WEIGHTS_URL",
               "the reference's files: dl.yf.io (down since 2022), torchvision for DRN-A-50"),
    )
}


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file.

    ``file_name``: the name it is served and cached under; ``url``: its official address;
    ``member``: for a ``.zip``, the one entry it must hold (the ``.pth`` kept in the cache);
    ``sha256_prefix`` or ``sha1``: the hash of the ``.pth``; ``layout``: its state_dict keys
    ("reference" or "pytorchcv"); ``top1_error``/``top5_error``: published ImageNet validation
    error in percent (None where not published). The preprocessing travels with it:
    ``mean``/``std`` of 0-1 RGB and ``input_size``.
    """

    variant: str
    source: str
    file_name: str
    url: str
    layout: str
    sha256_prefix: str = None
    sha1: str = None
    member: str = None
    release: str = None
    top1_error: float = None
    top5_error: float = None
    mean: tuple = STATISTICS["imagenet"][0]
    std: tuple = STATISTICS["imagenet"][1]
    input_size: int = 224

    @property
    def cached_name(self):
        """The ``.pth`` kept in the cache and searched in ``KERAS_DRN_WEIGHTS_DIR``."""
        return self.member or self.file_name

    @property
    def max_bytes(self):
        """The most bytes its ``.pth`` (and the download) may have: 4 per float32 parameter
        of the variant with 1000 classes (``keras_drn.constants.PARAMETERS``), plus 25 %
        and 4 MiB for the BatchNormalization statistics, an unused layer (DRN-C-58's
        reference file), the pickle and the archive. A larger file is not the published one:
        it is refused before it is read."""
        return int(PARAMETERS[self.variant] * 4 * 1.25) + 4 * 2**20

    @property
    def mirror_env(self):
        return SOURCES[self.source].mirror_env

    @property
    def hash_text(self):
        """``"SHA-1 <8 hex>..."`` or ``"SHA-256 <8 hex>..."``, for messages."""
        return f"SHA-1 {self.sha1[:8]}..." if self.sha1 else f"SHA-256 {self.sha256_prefix}..."


_FYU = "http://dl.yf.io/drn/"
_IMGCLSMOB = "https://github.com/osmr/imgclsmob/releases/download/"


def _official(variant, digest, top1, top5, base=_FYU, stem=None):
    name = f"{stem or variant}-{digest}.pth"
    return WeightsFile(variant, "official", name, base + name, "reference",
                       sha256_prefix=digest, top1_error=top1, top5_error=top5)


def _imgclsmob(variant, name, error, sha1, tag):
    """pytorchcv's ``get_model_file``: ``{name}-{error}-{sha1[:8]}.pth`` zipped, under the
    release ``tag``; ``error`` is the top-5 error in hundredths of a percent."""
    stem = f"{name}-{error}-{sha1[:8]}"
    return WeightsFile(variant, "imgclsmob", f"{stem}.pth.zip",
                       f"{_IMGCLSMOB}{tag}/{stem}.pth.zip", "pytorchcv", sha1=sha1,
                       member=f"{stem}.pth", release=tag, top5_error=int(error) / 100)


# Preference order per variant: the first row is what weights="imagenet" loads. Official
# errors: the paper's table (SPECS.md, "Published ImageNet numbers"). DRN-A-50's file is
# torchvision's ResNet-50 loaded into the dilated network, as the reference does: the paper's
# DRN-A-50 numbers (22.9 / 6.6) are of a DRN-A-50 trained as such, so none are given here.
FILES = (
    _imgclsmob("drn_c_26", "drnc26", "0723", "e7306483781db61f71302eda6769d7d9fd126bf6",
               "v0.0.508"),
    _official("drn_c_26", "ddedf421", 24.9, 7.6),
    _imgclsmob("drn_c_42", "drnc42", "0628", "8817241f62263c6375ff3c17a9d34f42067a114d",
               "v0.0.556"),
    _official("drn_c_42", "9d336e8c", 22.9, 6.6),
    _imgclsmob("drn_c_58", "drnc58", "0527", "3f74be98f80db3273ed764ded5bcb5d8bdf0b907",
               "v0.0.559"),
    _official("drn_c_58", "0a53a92c", 21.7, 6.0),
    _imgclsmob("drn_d_22", "drnd22", "0758", "02cb44bdea9b05e988e65576f79f5f5c133f2664",
               "v0.0.498"),
    _official("drn_d_22", "4bd2f8ea", 25.8, 8.2),
    _imgclsmob("drn_d_38", "drnd38", "0643", "496f648b8b8427050ad3327077f9a9b7a07fbcc6",
               "v0.0.552"),
    _official("drn_d_38", "eebb45f0", 23.8, 6.9),
    _imgclsmob("drn_d_54", "drnd54", "0517", "caa3c85dbdb39397f049da649d196b15704427b3",
               "v0.0.554"),
    _official("drn_d_54", "0e0534ff", 21.2, 5.9),
    _imgclsmob("drn_d_105", "drnd105", "0501", "8dc6aa76c16cb1964929adf53183d1e0324ae051",
               "v0.0.564"),
    _official("drn_d_105", "12b40979", 20.6, 5.5),
    _official("drn_a_50", "19c8e357", None, None, base="https://download.pytorch.org/models/",
              stem="resnet50"),
)


def files_for(variant):
    """The rows of ``variant`` in preference order (empty when it has none)."""
    return [f for f in FILES if f.variant == variant]


def variants_with_weights():
    return sorted({f.variant for f in FILES})


def parse(weights):
    """``"imagenet"`` -> None (the default order), ``"imagenet:<source>"`` -> the source
    name; anything else -> False (not a pretrained-weights name)."""
    if not isinstance(weights, str) or not (weights == DEFAULT or weights.startswith("imagenet:")):
        return False
    if weights == DEFAULT:
        return None
    source = weights[len(DEFAULT) + 1:]
    if source not in SOURCES:
        raise ValueError(
            f"Unknown weights name {weights!r}; use 'imagenet' (the default source of each "
            f"variant) or one of {[f'imagenet:{s}' for s in SOURCES]}."
        )
    return source


def choose(variant, weights):
    """The files ``weights`` ("imagenet" or "imagenet:<source>") may load for ``variant``, in
    the order to try. ValueError when there is none, listing what exists."""
    rows = files_for(variant)
    if not rows:
        raise ValueError(
            f"There is no official ImageNet checkpoint for {variant!r}; variants with one: "
            f"{variants_with_weights()}. Use weights=None or the path to your own weights "
            "file."
        )
    source = parse(weights)
    if source is None:
        return rows
    chosen = [f for f in rows if f.source == source]
    if not chosen:
        others = [f"imagenet:{f.source}" for f in rows]
        raise ValueError(
            f"The source {source!r} has no ImageNet weights for {variant!r}; use one of "
            f"{others} (or 'imagenet')."
        )
    return chosen


def statistics(weights, variant=None):
    """``(mean, std)`` of 0-1 RGB that the weights named ``weights`` expect: a dataset of
    ``STATISTICS`` (``"imagenet"``, ``"cityscapes"``), or ``"imagenet:<source>"``; with a
    ``variant``, read from the row that ``weights`` loads for it (``choose``). ValueError
    naming the valid names otherwise (a file path has no statistics here)."""
    if variant is not None and parse(weights) is not False:
        row = choose(variant, weights)[0]
        return tuple(row.mean), tuple(row.std)
    if isinstance(weights, str) and weights in STATISTICS:
        mean, std = STATISTICS[weights]
        return tuple(mean), tuple(std)
    if parse(weights) is not False:
        mean, std = STATISTICS[DEFAULT]
        return tuple(mean), tuple(std)
    names = [*STATISTICS, *(f"imagenet:{s}" for s in SOURCES)]
    raise ValueError(f"weights must name the statistics of pretrained weights, one of {names}; "
                     f"received {weights!r}.")
