"""Argument types and texts several commands share; imports no Keras."""

import argparse
import os
import sys

from keras_drn.workflows.record import sizes  # noqa: F401  (threshold --min-sizes)

REPLACE_HELP = ("replace existing output files that keras_drn did not write (without it they "
                "are refused, before any work; files it wrote are replaced)")
SCALES_HELP = ("comma-separated test scales (default 1; the reference's multi-scale test: "
               "0.5,0.75,1,1.25,1.5,1.75)")
INFO_HELP = "the run's info.json (default: beside the model)"


def numbers(text):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def scales(text):
    values = numbers(text)
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"scales must be positive, got {text!r}")
    return values


def thresholds(text):
    values = numbers(text)
    if not all(0 < t < 1 for t in values):  # NaN fails too
        raise argparse.ArgumentTypeError(f"thresholds are object probabilities strictly "
                                         f"between 0 and 1, got {text!r}")
    return values


def progress(one_line_per_epoch):
    """Keras's ``verbose`` for training: progress bars on a terminal, one line per epoch when
    asked or when the output is a file or a pipe (Keras's bars redraw with backspaces and
    carriage returns whenever Python runs on a POSIX system, terminal or not)."""
    return 2 if one_line_per_epoch or not sys.stdout.isatty() else 1


def image_files(paths):
    """Files as given; a folder stands for its image files (sorted)."""
    from keras_drn.constants import IMAGE_EXTENSIONS

    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise ValueError(f"The folder {path!r} holds no image files "
                                 f"({', '.join(IMAGE_EXTENSIONS)}).")
            files += found
        else:
            files.append(path)
    return files
