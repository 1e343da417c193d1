"""Writing files so that nothing is ever half-written: the one atomic writer of keras_drn.

Every file keras_drn writes (run folders, checkpoints, pictures, converted weights, exports)
goes through ``write_atomically``: the content is written to a temporary name in the same
folder, flushed and fsync-ed, given the permissions a plain ``open()`` would have given it
(``0o666`` less the umask; ``tempfile.mkstemp`` would leave ``0o600``), then renamed over the
destination, and the folder is fsync-ed so the rename survives a power cut. A reader, a crash
or ``SIGKILL`` at any instant sees the old file or the new one, never a torn one; a killed
writer leaves at most a hidden ``.<name>.<random>.tmp`` file, which ``remove_stale_temporaries``
clears.

Outputs a command writes into folders it does not own (masks, overlays, pictures, submission
CSVs, ``threshold.json``, ``oof.npz``) replace only files keras_drn wrote: each such write
(``overwrite=False`` or ``True``) appends ``<sha256> <name>`` to the folder's hidden record
``RECORD`` before the rename, and ``check_replaceable`` refuses an existing file whose content
is not one keras_drn recorded under that name (a ``train.csv``, an input image, a file of an
older keras_drn) unless ``overwrite`` (``--overwrite``), as ``keras-drn export`` refuses any
existing output and ``keras-drn train`` a folder of another run. The files of a run folder's
own bookkeeping (``info.json``, models, ``log.csv``, ``state/``) are not recorded: the run's
``info.json`` says whose they are (``keras_drn.workflows.runs``).
"""

import contextlib
import hashlib
import json
import os
import pathlib
import uuid

TEMPORARY_SUFFIX = ".tmp"
RECORD = ".keras_drn-written"
_records = {}  # folder -> (the record's (inode, size, mtime), {name: {digests}})


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


def digest(path):
    """The sha256 of a file's content (hex)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _record(directory):
    """``{name: {digest, ...}}`` of the files keras_drn wrote in ``directory`` (its
    ``RECORD``; a line torn by a killed writer is skipped)."""
    directory = pathlib.Path(directory).resolve()
    path = directory / RECORD
    try:
        status = path.stat()
    except FileNotFoundError:
        return {}
    key = (status.st_ino, status.st_size, status.st_mtime_ns)
    cached = _records.get(directory)
    if cached is not None and cached[0] == key:
        return cached[1]
    written = {}
    with open(path, "rb") as stream:
        for line in stream.read().decode("utf-8", "replace").splitlines():
            found, _, name = line.partition(" ")
            if len(found) == 64 and name:
                written.setdefault(name, set()).add(found)
    _records[directory] = (key, written)
    return written


def _add_to_record(directory, name, found):
    directory = pathlib.Path(directory).resolve()
    path = directory / RECORD
    written = _record(directory)
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)  # umask applies
    try:
        size = os.fstat(descriptor).st_size
        torn = size and os.pread(descriptor, 1, size - 1) != b"\n"  # a killed writer's line
        line = ("\n" if torn else "") + f"{found} {name}\n"
        os.write(descriptor, line.encode())
        os.fsync(descriptor)
        status = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    cached = _records.get(directory)
    if cached is not None and cached[0][1] == size and status.st_size == size + len(line):
        written.setdefault(name, set()).add(found)  # nobody else appended: no need to reread
        _records[directory] = ((status.st_ino, status.st_size, status.st_mtime_ns), written)
    else:
        _records.pop(directory, None)


def written_by_keras_drn(path):
    """Whether the file ``path`` holds content keras_drn wrote under its name (its folder's
    ``RECORD``)."""
    path = pathlib.Path(path)
    written = _record(path.parent if str(path.parent) else ".").get(path.name)
    return bool(written) and path.is_file() and digest(path) in written


def check_replaceable(paths, overwrite=False, option="--output-dir"):
    """FileExistsError unless each of ``paths`` is absent, a file keras_drn wrote
    (``written_by_keras_drn``) or ``overwrite``; naming the first such file, how many there
    are, and the fix: another ``option`` (the flag that chose the path) or ``--overwrite``.
    IsADirectoryError for a path that is a folder (``overwrite`` or not). Check before the
    work that ends in the write (predicting a folder, say)."""
    foreign = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder, not a file: choose another {option}.")
        if not overwrite and os.path.lexists(path) and not written_by_keras_drn(path):
            foreign.append(path)
    if foreign:
        more = f" (and {len(foreign) - 1} more file(s) there)" if len(foreign) > 1 else ""
        raise FileExistsError(
            f"{foreign[0]} exists{more} and was not written by keras_drn: it is not replaced. "
            f"Choose another {option}, or pass --overwrite (overwrite=True) to replace it.")


def write_atomically(path, write, what="output", overwrite=None, option="--output-dir"):
    """Calls ``write(temporary_path)`` and moves the result to ``path`` atomically.

    ``write`` receives a path (``str``) with ``path``'s suffixes and must leave the complete
    content there; the file is then fsync-ed, given the umask's permissions and renamed over
    ``path``. Any exception (``KeyboardInterrupt`` too) removes the temporary file and leaves
    ``path`` as it was. Returns ``path``.

    ``overwrite``: ``None`` for a run folder's bookkeeping (not checked, not recorded);
    ``False`` for an output that may replace only a file keras_drn wrote
    (``check_replaceable``, ``option`` naming the flag that chose ``path``); ``True`` for one
    that may replace anything. Both record the new content in the folder's ``RECORD`` (before
    the rename: a kill in between leaves the old file, still recorded).
    """
    path = pathlib.Path(path)
    directory = check_writable(path.parent if str(path.parent) else ".", what)
    if overwrite is not None:
        check_replaceable([path], overwrite, option)
    temporary = temporary_path(path)
    try:
        write(str(temporary))
        if temporary.is_dir():
            raise IsADirectoryError(f"write_atomically writes files; {temporary} is a folder.")
        _fsync_file(temporary)
        os.chmod(temporary, umask_mode())
        if overwrite is not None:
            _add_to_record(directory, path.name, digest(temporary))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(directory)
    return path


def write_bytes(path, data, what="output", overwrite=None, option="--output-dir"):
    """``data`` (bytes) into ``path``, atomically (``overwrite``, ``option``: as
    ``write_atomically``)."""
    return write_atomically(path, lambda temporary: pathlib.Path(temporary).write_bytes(data),
                            what, overwrite, option)


def write_text(path, text, what="output", overwrite=None, option="--output-dir"):
    """``text`` into ``path`` (UTF-8), atomically."""
    return write_bytes(path, text.encode("utf-8"), what, overwrite, option)


def write_json(path, value, what="output", overwrite=None, option="--output-dir"):
    """``value`` as indented JSON into ``path``, atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n", what, overwrite, option)


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
