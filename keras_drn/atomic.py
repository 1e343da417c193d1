"""Writing files so that nothing is ever half-written: the one atomic writer of keras_drn.

Every file keras_drn writes (run folders, checkpoints, pictures, converted weights, exports)
goes through ``write_atomically``: the content is written to a temporary name in the same
folder, flushed and fsync-ed, given the permissions a plain ``open()`` would have given it
(``0o666`` less the umask; ``tempfile.mkstemp`` would leave ``0o600``), then renamed over the
destination, and the folder is fsync-ed so the rename survives a power cut. A reader, a crash
or ``SIGKILL`` at any instant sees the old file or the new one, never a torn one; a killed
writer leaves at most a hidden ``.<name>.<random>.tmp`` file, which ``remove_stale_temporaries``
clears.
"""

import contextlib
import json
import os
import pathlib
import uuid

TEMPORARY_SUFFIX = ".tmp"


def umask_mode(base=0o666):
    """``base`` less the process's umask: the mode ``open()`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def temporary_path(path):
    """A hidden name beside ``path``, unique to this call, keeping ``path``'s suffixes (Keras,
    h5py and PIL choose the format by suffix): ``dir/.name.<hex>.tmp.<suffixes>``."""
    path = pathlib.Path(path)
    suffixes = "".join(path.suffixes[-2:]) if path.name.endswith(".weights.h5") else path.suffix
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}{suffixes}")


def fsync_directory(directory):
    """Makes a rename in ``directory`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _fsync_file(path):
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())


def check_writable(directory, what="output"):
    """Creates ``directory`` if needed; PermissionError naming it and what to do when it is
    not writable (instead of an error about a random temporary file)."""
    directory = pathlib.Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except PermissionError as error:
        raise PermissionError(
            f"Cannot create the {what} folder {directory}: permission denied. Choose a "
            "writable folder (for example --output-dir) or fix its permissions."
        ) from error
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(
            f"The {what} folder {directory} is not writable. Choose a writable folder (for "
            "example --output-dir) or fix its permissions."
        )
    return directory


def write_atomically(path, write, what="output"):
    """Calls ``write(temporary_path)`` and moves the result to ``path`` atomically.

    ``write`` receives a path (``str``) with ``path``'s suffixes and must leave the complete
    content there; the file is then fsync-ed, given the umask's permissions and renamed over
    ``path``. Any exception (``KeyboardInterrupt`` too) removes the temporary file and leaves
    ``path`` as it was. Returns ``path``.
    """
    path = pathlib.Path(path)
    directory = check_writable(path.parent if str(path.parent) else ".", what)
    temporary = temporary_path(path)
    try:
        write(str(temporary))
        if temporary.is_dir():
            raise IsADirectoryError(f"write_atomically writes files; {temporary} is a folder.")
        _fsync_file(temporary)
        os.chmod(temporary, umask_mode())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(directory)
    return path


def write_bytes(path, data, what="output"):
    """``data`` (bytes) into ``path``, atomically."""
    return write_atomically(path, lambda temporary: pathlib.Path(temporary).write_bytes(data),
                            what)


def write_text(path, text, what="output"):
    """``text`` into ``path`` (UTF-8), atomically."""
    return write_bytes(path, text.encode("utf-8"), what)


def write_json(path, value, what="output"):
    """``value`` as indented JSON into ``path``, atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n", what)


def remove_stale_temporaries(directory):
    """Deletes the temporary files a killed writer left in ``directory``
    (``.<name>.<hex>.tmp*``). Call it only while no other process writes there (for a run
    folder: while holding its lock)."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        if entry.name.startswith(".") and TEMPORARY_SUFFIX in entry.name and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed
