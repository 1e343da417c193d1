"""The ``weights=`` argument of every keras_drn model: validation and loading."""

import os

import keras

KERAS_SUFFIXES = (".weights.h5", ".keras")
TORCH_SUFFIXES = (".pth", ".pt")
WEIGHTS_HELP = (
    "weights must be None (random init), 'imagenet' (the official checkpoint) or the path to "
    "an existing weights file ({suffixes})"
)


def _suffixes():
    return ", ".join(KERAS_SUFFIXES + TORCH_SUFFIXES)


def validate_weights_argument(weights):
    """Raises ValueError unless ``weights`` is None, "imagenet" or an existing weights file."""
    if weights is None or weights == "imagenet":
        return
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if os.path.isfile(path):
            if path.endswith(KERAS_SUFFIXES + TORCH_SUFFIXES):
                return
            raise ValueError(
                f"{WEIGHTS_HELP.format(suffixes=_suffixes())}; received the file {path!r}, "
                "whose type is not one of those."
            )
        raise ValueError(
            f"{WEIGHTS_HELP.format(suffixes=_suffixes())}; received {path!r}, which is not "
            "an existing file."
        )
    raise ValueError(f"{WEIGHTS_HELP.format(suffixes=_suffixes())}; received {weights!r}.")


def load_weights(model, weights, variant):
    """Loads ``weights`` (see ``validate_weights_argument``) into a freshly built ``model``.

    ``"imagenet"`` and PyTorch files go through the reference-key converter, which leaves a
    fresh head when ``include_top=False`` or the number of classes differs.
    """
    from keras_drn.weights.convert import load_checkpoint

    if weights == "imagenet":
        _load_imagenet(model, variant)
        return
    path = os.fspath(weights)
    if path.endswith(TORCH_SUFFIXES):
        load_checkpoint(model, path, variant)
    elif path.endswith(".weights.h5"):
        _load_keras_weights(model, path)
    else:
        # safe_mode stays on: a .keras file with Lambda layers (pickled code) is refused.
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
        copy_weights_by_name(source, model, origin=path)


def _load_imagenet(model, variant):
    """The converted official checkpoint (downloaded and converted once, then cached); a
    model without the 1000-class head gets the backbone and keeps its fresh head."""
    from keras_drn.weights.pretrained import imagenet_weights

    path = imagenet_weights(variant)
    if _has_imagenet_head(model):
        _load_keras_weights(model, path)
        return
    import keras_drn

    reference = keras_drn.get_model(variant)
    reference.load_weights(path)
    copy_weights_by_name(reference, model, origin=path, fresh_head=True)
    print(f"keras_drn: loaded the ImageNet {variant} backbone; the classifier head, if any, "
          "is freshly initialised for fine-tuning.")


def _has_imagenet_head(model):
    names = {layer.name for layer in model.layers}
    return "fc" in names and model.get_layer("fc").units == 1000 and "seg" not in names


def _load_keras_weights(model, path):
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(
            f"Could not load {path!r} into {model.name!r}: {error}. The file must hold the "
            "weights of the same architecture with the same include_top and classes."
        ) from error


def copy_weights_by_name(source, target, origin, fresh_head=False):
    """Copies every weighted layer of ``target`` from the layer of the same name in ``source``.

    Raises ValueError naming the layers that are missing from ``source`` or whose weight shapes
    differ, so a file of another architecture never loads silently. With ``fresh_head`` the
    classifier (``fc``) may be missing or differ: it keeps its initialisation.
    """
    source_layers = {layer.name: layer for layer in source.layers}
    missing, mismatched = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        other = source_layers.get(layer.name)
        if fresh_head and layer.name == "fc":
            continue
        if other is None:
            missing.append(layer.name)
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        other_shapes = [tuple(w.shape) for w in other.weights]
        if shapes != other_shapes:
            mismatched.append(f"{layer.name}: {other_shapes} in file, {shapes} in model")
            continue
        layer.set_weights(other.get_weights())
    if missing or mismatched:
        raise ValueError(
            f"{origin!r} does not match {target.name!r}. Layers missing from the file: "
            f"{missing or 'none'}. Shape mismatches: {mismatched or 'none'}."
        )
