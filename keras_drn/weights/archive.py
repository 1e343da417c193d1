"""The ``.pth`` inside a ``.pth.zip`` (imgclsmob's release assets), read without extracting
anything to the file system under a name the archive chooses.

A ``.pth`` written by ``torch.save`` since PyTorch 1.6 is itself a zip (``archive/data.pkl``,
``archive/data/0``, ...); a ``.pth.zip`` is a zip whose single entry is a ``.pth``. The entry
must be a plain file name (no folder, no ``..``, not absolute: nothing a careless extractor
would write outside its folder), and it is read in memory only when its declared size is
within the limit (``MAX_MEMBER_BYTES``, or the file's expected size), and never past that
declared size as it is decompressed (a zip may lie about its sizes: the CRC check then fails).
"""

import io
import os
import zipfile

MAX_MEMBER_BYTES = 2 * 2**30  # DRN-D-105's .pth is about 220 MB


class ArchiveError(ValueError):
    """A ``.pth.zip`` that is not exactly one safely named ``.pth`` of bounded size."""


def _is_plain_name(name):
    return (name and "/" not in name and "\\" not in name and name not in (".", "..")
            and ":" not in name and not name.startswith(".."))


def is_wrapped_checkpoint(path):
    """Whether ``path`` is a zip of ``.pth`` entries (a ``.pth.zip``), not a ``torch.save``
    zip (whose entries are ``<folder>/data.pkl`` and the like)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith((".pth", ".pt")) for name in archive.namelist())


def read_member(path, expected=None, limit=None):
    """The bytes of the one ``.pth`` entry of the zip ``path`` (a path or a binary file),
    named ``expected`` when given. Raises ``ArchiveError`` naming the problem: several
    entries, an unsafe or unexpected name, a declared size over ``limit`` (and always over
    ``MAX_MEMBER_BYTES``), a damaged entry (its data past its declared size is never read)."""
    limit = MAX_MEMBER_BYTES if limit is None else min(limit, MAX_MEMBER_BYTES)
    shown = os.fspath(path) if not hasattr(path, "read") else "the downloaded zip"
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{shown} is not a zip archive ({error}).") from None
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if len(infos) != 1:
            raise ArchiveError(
                f"{shown} must hold exactly one .pth file; it holds {len(infos)} entries "
                f"({names[:5]}). Is it the published .pth.zip?"
            )
        info = infos[0]
        if not _is_plain_name(info.filename) or info.is_dir():
            raise ArchiveError(
                f"{shown} holds the entry {info.filename!r}, which is not a plain file name "
                "(a path outside the archive's folder, a folder or an absolute path): refused."
            )
        if expected is not None and info.filename != expected:
            raise ArchiveError(f"{shown} holds {info.filename!r}; expected {expected!r}.")
        if info.file_size > limit:
            raise ArchiveError(
                f"{shown}: its entry {info.filename!r} declares {info.file_size:,} bytes, more "
                f"than the {limit:,} a DRN checkpoint may have: refused."
            )
        data = io.BytesIO()
        try:
            with archive.open(info) as stream:  # never more than the declared size
                while data.tell() < info.file_size:
                    block = stream.read(min(2**20, info.file_size - data.tell()))
                    if not block:
                        break
                    data.write(block)
                if data.tell() != info.file_size or stream.read(1):
                    raise zipfile.BadZipFile(f"its entry {info.filename!r} does not hold the "
                                             f"{info.file_size:,} bytes it declares")
        except (zipfile.BadZipFile, EOFError, OSError) as error:  # CRC errors are BadZipFile
            raise ArchiveError(f"{shown} is damaged ({error}); download it again.") from None
        return data.getvalue()
