"""Dense-prediction heads and contexts for DRN backbones, as registries (name -> builder).

A head builder takes ``(pyramid, feature_info, image, num_classes, upsampling, **options)``:
the backbone's ``pyramid_outputs`` (``{"levelN": (batch, h, w, c)}``) and ``feature_info``
(per level: ``level``, ``channels``, ``reduction``), the model's input image ``(batch, H, W,
3)`` (the size to reach), and returns class scores ``(batch, H, W, num_classes)``. A context
builder maps the last level's map ``(batch, h, w, c)`` to the map the head reads instead.

Heads: ``"drn"`` (``heads/drn.py``, Yu et al. 2017) and ``"gcn"`` (``heads/gcn.py``, Peng et
al. 2017). Contexts: ``"parsenet"`` (``heads/parsenet.py``, Liu et al. 2015). Adding one is a
module and an entry here.
"""

from keras_drn.models.heads import drn, gcn, parsenet

HEADS = {"drn": drn.build_head, "gcn": gcn.build_head}
CONTEXTS = {"parsenet": parsenet.build_context}
UPSAMPLINGS = ("deconv", "bilinear")


def get_head(name):
    """The builder of head ``name``; a ``ValueError`` lists the valid names."""
    if name not in HEADS:
        raise ValueError(f"head must be one of {tuple(HEADS)}; received head={name!r}.")
    return HEADS[name]


def get_context(name):
    """The builder of context ``name``, or ``None`` for ``None``; a ``ValueError`` lists the
    valid names."""
    if name is not None and name not in CONTEXTS:
        raise ValueError(
            f"context must be one of {(None, *CONTEXTS)}; received context={name!r}."
        )
    return None if name is None else CONTEXTS[name]
