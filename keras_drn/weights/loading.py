"""The ``weights=`` argument of every keras_drn model: validation and loading.

Accepted: ``None``; ``"imagenet"`` (each variant's default file, see
``keras_drn.weights.sources``) or ``"imagenet:<source>"``; the path of a ``.weights.h5`` or
``.keras`` file; or the path of a PyTorch checkpoint (``.pth``/``.pt``, or imgclsmob's
``.pth.zip``) in any layout of ``keras_drn.weights.layouts`` (detected from its keys).
The model passes its ``CheckpointNames``; nothing here builds a model.
"""

import os
import zipfile

import keras

from keras_drn.weights import pretrained, sources
from keras_drn.weights.archive import is_wrapped_checkpoint, read_member
from keras_drn.weights.convert import state_dict_to_model
from keras_drn.weights.torch_reader import load_state_dict

KERAS_SUFFIXES = (".weights.h5", ".keras")
TORCH_SUFFIXES = (".pth", ".pt", ".pth.zip")
WEIGHTS_HELP = (
    "weights must be None (random init), 'imagenet' (the default ImageNet file), one of "
    "{names}, or the path to an existing weights file ({suffixes})"
)


def _help():
    names = [f"imagenet:{name}" for name in sources.SOURCES]
    return WEIGHTS_HELP.format(names=names, suffixes=", ".join(KERAS_SUFFIXES + TORCH_SUFFIXES))


def validate_weights_argument(weights, variant=None):
    """Raises ValueError unless ``weights`` is None, an ImageNet name (that ``variant`` has,
    when given) or an existing weights file of a known type."""
    if weights is None:
        return
    if sources.parse(weights) is not False:
        if variant is not None:
            sources.choose(variant, weights)
        return
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if os.path.isfile(path):
            if path.endswith(KERAS_SUFFIXES + TORCH_SUFFIXES):
                return
            raise ValueError(f"{_help()}; received the file {path!r}, whose type is not one "
                             "of those.")
        raise ValueError(f"{_help()}; received {path!r}, which is not an existing file.")
    raise ValueError(f"{_help()}; received {weights!r}.")


def read_checkpoint(path, member=None):
    """The state_dict of a PyTorch file, or of the ``.pth`` inside a ``.pth.zip``."""
    path = os.fspath(path)
    if is_wrapped_checkpoint(path):
        return load_state_dict(read_member(path, member), name=path)
    return load_state_dict(path)


def load_weights(model, weights, names):
    """Loads ``weights`` (see ``validate_weights_argument``) into a freshly built ``model``
    whose checkpoint names are ``names`` (``keras_drn.weights.layouts.CheckpointNames``).

    PyTorch files go through the key mapping, which leaves a fresh head when
    ``include_top=False`` or the number of classes differs. ImageNet weights print one line
    naming the source and the file loaded; other files print one when a head is left out.
    """
    if weights is None:
        return
    if sources.parse(weights) is not False:
        entry, path = pretrained.fetch_first(names.variant, weights)
        error = f", top-5 error {entry.top5_error}%" if entry.top5_error else ""
        origin = f"{path} ({entry.source} ImageNet weights, {entry.hash_text}{error})"
        notes = state_dict_to_model(read_checkpoint(path, entry.member), model, names, origin)
        _report(names.variant, origin, notes, always=True)
        return
    path = os.fspath(weights)
    if path.endswith(TORCH_SUFFIXES):
        notes = state_dict_to_model(read_checkpoint(path), model, names, origin=path)
        _report(names.variant, path, notes)
    elif path.endswith(".weights.h5"):
        _load_keras_weights(model, path)
    else:
        copy_weights_by_name(load_keras_model(path), model, origin=path)


def check_keras_file(path):
    """ValueError naming ``path`` and its damage unless it is a whole ``.keras`` file (a zip
    archive whose entries pass their CRC check): Keras says "File not found" for a truncated
    one."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"Expected a .keras model file; received {path!r}.")
    if not os.path.isfile(path):
        raise ValueError(f"Expected an existing .keras model file; received {path!r}, which "
                         "does not exist.")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{path!r} is empty (0 bytes): a truncated or unfinished file.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} ({size:,} bytes) is damaged or truncated or not a .keras "
                         "file: a .keras file is a zip archive, and this one has no complete "
                         "end.")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        broken = f"({error})"
    if broken is not None:
        raise ValueError(f"{path!r} is damaged: its entry {broken} fails its check (CRC).")


def load_keras_model(path):
    """The model of a ``.keras`` file, checked first (``check_keras_file``), uncompiled, with
    Keras's safe_mode on: a file with Lambda layers (pickled code) is refused."""
    check_keras_file(path)
    return keras.saving.load_model(os.fspath(path), compile=False, safe_mode=True)


def _report(variant, origin, notes, always=False):
    """One line: what was loaded from where, and the heads left out."""
    if notes:
        print(f"keras_drn: loaded the {variant} backbone from {origin}; {'; '.join(notes)}.")
    elif always:
        print(f"keras_drn: loaded {variant} from {origin}.")


def _load_keras_weights(model, path):
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(
            f"Could not load {path!r} into {model.name!r}: {error}. The file must hold the "
            "weights of the same architecture with the same include_top and classes."
        ) from error


def copy_weights_by_name(source, target, origin):
    """Copies every weighted layer of ``target`` from the layer of the same name in ``source``.

    Raises ValueError naming the layers that are missing from ``source`` or whose weight shapes
    differ, so a file of another architecture never loads silently.
    """
    source_layers = {layer.name: layer for layer in source.layers}
    missing, mismatched = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        other = source_layers.get(layer.name)
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
