"""The one folder lister of keras_drn.data: the image (or mask) files directly in a folder.

Every folder source lists its files here: classification class folders, image/mask folder
pairs, the images beside a Kaggle CSV, a test folder to predict. It needs only the standard
library (no TensorFlow, no Keras).
"""

import os

from keras_drn.constants import IMAGE_EXTENSIONS

__all__ = ["files_by_stem", "list_images"]


def list_images(directory, what="folder", extensions=IMAGE_EXTENSIONS, allow_empty=False):
    """Sorted paths of the files directly in ``directory`` whose extension (any case) is one of
    ``extensions``; hidden files (``.name``) are left out.

    Raises:
        ValueError: ``directory`` does not exist, is not a folder, or holds no such file
            (unless ``allow_empty``), named as ``"the <what> '<directory>'"``.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"The {what} {directory!r} does not exist or is not a folder.")
    paths = sorted(os.path.join(directory, name) for name in os.listdir(directory)
                   if not name.startswith(".") and name.lower().endswith(tuple(extensions)))
    if not paths and not allow_empty:
        raise ValueError(f"The {what} {directory!r} holds no image files "
                         f"({', '.join(extensions)}).")
    return paths


def files_by_stem(directory, what="image", extensions=IMAGE_EXTENSIONS):
    """``{stem: path}`` of ``list_images(directory)``, in stem order.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
        ValueError: it holds no such file, or two files share a stem (both named).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"The {what} folder {directory!r} does not exist.")
    found = {}
    for path in list_images(directory, f"{what} folder", extensions):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in found:
            raise ValueError(f"Two {what} files share the stem {stem!r} in {directory!r}: "
                             f"{os.path.basename(found[stem])!r} and "
                             f"{os.path.basename(path)!r}.")
        found[stem] = path
    return dict(sorted(found.items()))
