"""Dense-prediction heads and contexts for DRN backbones, as registries (name -> builder).

A head builder takes ``(pyramid, feature_info, image, num_classes, upsampling, **options)``:
the backbone's ``pyramid_outputs`` (``{"levelN": (batch, h, w, c)}``) and ``feature_info``
(per level: ``level``, ``channels``, ``reduction``), the model's input image ``(batch, H, W,
3)`` (the size to reach), and returns class scores ``(batch, H, W, num_classes)``. A context
builder maps the last level's map ``(batch, h, w, c)`` to the map the head reads instead.

Heads: ``"drn"`` (``heads/drn.py``, Yu et al. 2017) and ``"gcn"`` (``heads/gcn.py``, Peng et
al. 2017). Contexts: ``"parsenet"`` (``heads/parsenet.py``, Liu et al. 2015). The names are
``keras_drn.constants.HEADS`` and ``CONTEXTS`` (the command offers them before it imports
Keras); each names the module here that defines ``build_head`` (``build_context``), so adding
one is that module and its name in ``keras_drn.constants``.
"""

import importlib

from keras_drn import constants

HEADS = {name: importlib.import_module(f"keras_drn.models.heads.{name}").build_head
         for name in constants.HEADS}
CONTEXTS = {name: importlib.import_module(f"keras_drn.models.heads.{name}").build_context
            for name in constants.CONTEXTS}
UPSAMPLINGS = constants.UPSAMPLINGS


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
