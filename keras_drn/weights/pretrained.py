"""Getting a pretrained weights file (``keras_drn.weights.sources``) onto this machine:
local folders first, then the network, always checking the full hash.

Order for one file: the folder ``KERAS_DRN_WEIGHTS_DIR`` (for example a read-only Kaggle
dataset: it is only read), then the cache ``$KERAS_HOME/keras_drn`` (default
``~/.keras/keras_drn``), then the source's mirror variable (``KERAS_DRN_IMGCLSMOB_URL``,
``KERAS_DRN_WEIGHTS_URL`` for the official files: a folder URL serving the same file names),
else the file's official URL. A local file must have the table's hash (the full SHA-1, or the
SHA-256 prefix of the official names). A download is read into memory (at most
the file's ``max_bytes``, and within ``DOWNLOAD_DEADLINE_SECONDS`` in all, each read waiting at
most ``TIMEOUT_SECONDS``), its ``.pth`` taken out of the zip (``keras_drn.weights.archive``),
hashed, and only then written into the cache through ``keras_drn.atomic``: another process
never sees a partial or unchecked file under the cached name.
"""

import hashlib
import http.client
import io
import os
import socket
import time
import urllib.error
import urllib.request

from keras_drn.atomic import check_writable, write_bytes
from keras_drn.weights import sources
from keras_drn.weights.archive import ArchiveError, read_member

CACHE_SUBDIR = "keras_drn"
DIR_ENV = "KERAS_DRN_WEIGHTS_DIR"
MIRROR_ENV = sources.SOURCES["official"].mirror_env  # KERAS_DRN_WEIGHTS_URL, kept
MAX_DOWNLOAD_BYTES = 2 * 2**30
TIMEOUT_SECONDS = 60  # the longest wait for the next bytes of a download
DOWNLOAD_DEADLINE_SECONDS = 30 * 60  # the whole download (DRN-D-105's zip: about 200 MB)
# The default file of each variant (what weights="imagenet" tries first), with its mean/std.
CHECKPOINTS = {variant: sources.files_for(variant)[0]
               for variant in sources.variants_with_weights()}


class _Refused(OSError):
    """A download refused for its size."""


class WeightsUnavailableError(OSError, ValueError):
    """No listed source gave a file with the right hash. ``failures``: (file, reason) pairs."""

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = list(failures)


def cache_dir():
    """``$KERAS_HOME/keras_drn`` (default ``~/.keras/keras_drn``), read at each call."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, CACHE_SUBDIR)


def weights_dir():
    """``$KERAS_DRN_WEIGHTS_DIR`` or None."""
    return os.environ.get(DIR_ENV) or None


def url_of(entry, base_url=None):
    """Where ``entry`` is downloaded from: ``base_url``, else its source's mirror variable, else
    its official URL; a mirror serves the file under its ``file_name``."""
    base = base_url or os.environ.get(entry.mirror_env)
    url = base.rstrip("/") + "/" + entry.file_name if base else entry.url
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"Weights are downloaded over http(s) only; received {url!r}.")
    return url


def digest_matches(entry, data):
    """(matches, hex digest) of ``data``, the bytes of the ``.pth``, against the table."""
    if entry.sha1:
        actual = hashlib.sha1(data).hexdigest()
        return actual == entry.sha1, actual
    actual = hashlib.sha256(data).hexdigest()
    return actual.startswith(entry.sha256_prefix), actual


def _mismatch(entry, where, actual):
    if entry.sha1:
        return f"{where} has SHA-1 {actual}, not the published {entry.sha1}"
    return f"{where} has SHA-256 {actual}, which does not start with {entry.sha256_prefix}"


def _checkpoint_bytes(entry, path):
    """The ``.pth`` bytes of a local ``path`` (the ``.pth`` or the published zip), read only
    when within the file's ``max_bytes``; ArchiveError naming the problem otherwise."""
    if path.endswith(".zip"):
        return read_member(path, entry.member, limit=entry.max_bytes)
    size = os.path.getsize(path)
    if size > entry.max_bytes:
        raise ArchiveError(f"{path} is {size:,} bytes, more than the {entry.max_bytes:,} a "
                           f"{entry.variant} checkpoint may have: refused")
    with open(path, "rb") as stream:
        return stream.read()


def find_local(entry, directory=None):
    """The checked local copy of ``entry`` (a ``.pth`` or ``.pth.zip`` path), or None:
    looked for in ``KERAS_DRN_WEIGHTS_DIR``, then ``directory`` (default: the cache).

    A file in ``KERAS_DRN_WEIGHTS_DIR`` that is damaged, too large or has the wrong hash is an
    error (that folder is yours, and only read); such a file in the cache is deleted, so that
    it is downloaded again.
    """
    folders = [(weights_dir(), True), (directory or cache_dir(), False)]
    for folder, strict in folders:
        if not folder:
            continue
        for name in dict.fromkeys((entry.cached_name, entry.file_name)):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                continue
            fix = (f"Replace it (keras-drn weights download {entry.variant} --dir {folder}) or "
                   f"unset {DIR_ENV}.")
            try:
                ok, actual = digest_matches(entry, _checkpoint_bytes(entry, path))
            except (ArchiveError, OSError) as error:
                if strict:
                    raise ArchiveError(f"{error} {fix}") from None
                _discard(path)
                continue
            if ok:
                return path
            if strict:
                raise ValueError(f"{_mismatch(entry, path, actual)}: corrupt or another file. "
                                 f"{fix}")
            _discard(path)
    return None


def _discard(path):
    """Deletes a bad cache file (a read-only cache keeps it: the download replaces it)."""
    try:
        os.remove(path)
    except OSError:
        pass


def _reason(error):
    """A short name for why a download failed: DNS, HTTP status, connection, transfer."""
    if isinstance(error, http.client.IncompleteRead):
        return f"the transfer was cut after {len(error.partial):,} bytes"
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP error {error.code} {error.reason}"
    reason = getattr(error, "reason", error)
    if isinstance(reason, socket.gaierror):
        return f"DNS lookup failed ({reason})"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"timed out: no data for {TIMEOUT_SECONDS} s"
    if isinstance(reason, ConnectionError):
        return f"connection failed ({reason})"
    return f"{type(reason).__name__}: {reason}"


def _download(url, limit=MAX_DOWNLOAD_BYTES):
    """The body at ``url``, at most ``limit`` bytes, within ``DOWNLOAD_DEADLINE_SECONDS`` in
    all (each wait for data at most ``TIMEOUT_SECONDS``); OSError with a reason."""
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_SECONDS
    limit = min(limit, MAX_DOWNLOAD_BYTES)
    body, announced = bytearray(), 0

    def wait():
        return max(0.01, min(TIMEOUT_SECONDS, deadline - time.monotonic()))

    def too_slow():
        of = f" of {announced:,}" if announced else ""
        return _Refused(f"the whole download has a deadline of {DOWNLOAD_DEADLINE_SECONDS:,} s, "
                        f"and {len(body):,}{of} bytes came in that time: the server sends too "
                        "slowly")

    try:
        with urllib.request.urlopen(url, timeout=wait()) as response:
            announced = int(response.headers.get("Content-Length") or 0)
            if announced > limit:
                raise _Refused(f"the server announces {announced:,} bytes, more than the "
                               f"{limit:,} this checkpoint may have")
            sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
            while True:
                if time.monotonic() >= deadline:
                    raise too_slow()
                if sock is not None:  # no wait past the deadline
                    sock.settimeout(wait())
                block = response.read1(2**20)  # what has come, up to 1 MiB
                if not block:
                    break
                body += block
                if len(body) > limit:
                    raise _Refused(f"the body is over {limit:,} bytes")
    except _Refused:
        raise
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError is an OSError
        if time.monotonic() >= deadline:
            raise too_slow() from error
        raise OSError(_reason(error)) from error
    if announced and len(body) != announced:
        raise OSError(f"the transfer was cut: {len(body):,} of {announced:,} bytes")
    return bytes(body)


def _writable(directory):
    """``directory`` (default: the cache), created if needed; PermissionError naming it and
    what to set when it cannot be written."""
    folder = directory or cache_dir()
    fix = ("choose a writable --dir" if directory else
           f"set KERAS_HOME to a writable folder (the cache is $KERAS_HOME/{CACHE_SUBDIR})")
    try:
        check_writable(folder, "weights")
    except PermissionError as error:
        raise PermissionError(
            f"Cannot write weights into {folder}: {error} To download, {fix}; to work offline, "
            f"put the files in a folder (read only is fine) and set {DIR_ENV} to it."
        ) from None
    return folder


def download(entry, base_url=None, directory=None):
    """Downloads ``entry``, checks it, writes its ``.pth`` into ``directory`` (default: the
    cache); returns the path. OSError (HTTP, DNS, cut transfer) or ValueError (hash, zip)
    naming the URL otherwise; PermissionError for a folder that cannot be written."""
    directory = _writable(directory)
    url = url_of(entry, base_url)
    try:
        body = _download(url, entry.max_bytes)
    except OSError as error:
        raise OSError(f"{url}: {error}") from error
    data = (read_member(io.BytesIO(body), entry.member, limit=entry.max_bytes) if entry.member
            else body)
    ok, actual = digest_matches(entry, data)
    if not ok:
        raise ValueError(f"{_mismatch(entry, 'the file downloaded from ' + url, actual)}: "
                         "corrupt or not the published file; it was not kept")
    final = os.path.join(directory, entry.cached_name)
    write_bytes(final, data, what="weights cache")
    return final


def fetch(entry, base_url=None, directory=None):
    """A checked local path of ``entry``: found locally or downloaded (see module doc)."""
    return find_local(entry, directory) or download(entry, base_url, directory)


def manual_route(entry):
    return (
        f"Offline: on a machine with internet run `keras-drn weights download {entry.variant} "
        f"--dir DIR` (or download {entry.url} yourself), copy DIR here and set {DIR_ENV}=DIR, "
        f"or pass weights='DIR/{entry.file_name}'."
    )


def fetch_first(variant, weights="imagenet", base_url=None, directory=None):
    """The first of ``sources.choose(variant, weights)`` that a local folder or the network
    gives with the right hash: ``(entry, path)``. ``WeightsUnavailableError`` when none does,
    with each source's failure, the other sources, the mirror variables and the manual route.
    """
    entries = sources.choose(variant, weights)
    failures = []
    for entry in entries:
        try:
            return entry, fetch(entry, base_url, directory)
        except PermissionError:
            raise
        except (OSError, ValueError) as error:
            failures.append((entry, str(error)))
    tried = {entry.source for entry in entries}
    others = [f"weights='imagenet:{f.source}'" for f in sources.files_for(variant)
              if f.source not in tried]
    lines = [f"Could not get ImageNet weights for {variant}:"]
    lines += [f"- {entry.source}: {reason}" for entry, reason in failures]
    if others:
        lines.append(f"Other sources: {', '.join(others)}.")
    mirrors = sorted({f"{e.mirror_env} (serving {e.file_name})" for e in entries})
    lines.append(f"A mirror: set {' or '.join(mirrors)}.")
    lines.append(manual_route(entries[0]))
    raise WeightsUnavailableError("\n".join(lines), failures)
