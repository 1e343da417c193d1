"""Weights: the pretrained files (``sources``) and getting them (``pretrained``), reading
PyTorch checkpoints (``torch_reader``, ``archive``), their key layouts (``layouts``), mapping
them onto models (``convert``), the ``weights=`` argument (``loading``) and the ``keras-drn
weights`` command (``commands``). Below ``keras_drn.models``: the models pass what it needs."""
