"""Where an export works until it is verified: a hidden staging folder beside the destination,
``.<name>.<pid>.<hex>.staging``, deleted whatever happens. A killed export (``SIGKILL``) cannot
delete its own: the next export beside the same destination removes the staging folders of
processes that no longer run before it starts.

Installing moves the verified artifact into place with the umask's permissions (``0o666``
/ ``0o777`` less the umask, as ``open()``/``mkdir()`` give; the staging folder itself is
``0o700``): a file through ``keras_drn.atomic.write_atomically``, a SavedModel folder by one
rename (an existing one is moved into the staging folder first and deleted with it)."""

import contextlib
import os
import re
import shutil
import uuid

from keras_drn import atomic

SUFFIX = ".staging"
_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{12}" + re.escape(SUFFIX) + "$")


def create(path):
    """A new staging folder beside ``path`` (its folder is created if needed; PermissionError
    naming it when not writable)."""
    directory, name = os.path.split(path)
    atomic.check_writable(directory, "export")
    staging = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{SUFFIX}")
    os.mkdir(staging, 0o700)
    return staging


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(directory):
    """Deletes the staging folders in ``directory`` whose process is gone; returns their
    paths. Those of running processes (other exports in progress) are left alone."""
    if not os.path.isdir(directory):
        return []
    removed = []
    for entry in os.scandir(directory):
        match = _NAME.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not _running(int(match["pid"])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def size_on_disk(path):
    """Bytes of a file, or of every file under a folder."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def install(staged, path, overwrite, staging):
    """Moves the verified artifact ``staged`` (inside ``staging``) to ``path``; ``path`` never
    holds a mix of an old and a new export."""
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} appeared during the export; pass overwrite=True.")
    if os.path.isfile(staged):
        if os.path.isdir(path) and not os.path.islink(path):
            os.replace(path, os.path.join(staging, "previous"))
        atomic.write_atomically(path, lambda temporary: os.replace(staged, temporary), "export")
        return
    file_mode, folder_mode = atomic.umask_mode(0o666), atomic.umask_mode(0o777)
    for root, folders, names in os.walk(staged):
        for name in names:
            file = os.path.join(root, name)
            with open(file, "rb+") as stream:
                os.fsync(stream.fileno())
            os.chmod(file, file_mode)
        for name in folders:
            os.chmod(os.path.join(root, name), folder_mode)
        atomic.fsync_directory(root)
    os.chmod(staged, folder_mode)
    if os.path.lexists(path):
        os.replace(path, os.path.join(staging, "previous"))
    os.replace(staged, path)
    atomic.fsync_directory(os.path.dirname(path))


def remove(staging):
    """Deletes the staging folder and what is left in it."""
    with contextlib.suppress(OSError):
        shutil.rmtree(staging)
