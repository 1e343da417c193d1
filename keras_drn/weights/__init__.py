"""Weights: the pretrained files (``sources``) and getting them (``pretrained``), reading
PyTorch checkpoints (``torch_reader``, ``archive``), their key layouts (``layouts``), mapping
them onto models (``convert``), and the ``weights=`` argument (``loading``); the ``keras-drn weights``
command is ``keras_drn.cli.weights``. Below ``keras_drn.models``: the models pass what it needs."""
