"""Read PyTorch checkpoints (``torch.save`` files) with numpy alone, without running their code.

A ``.pth`` file is a pickle, and an ordinary unpickler calls whatever function the file names,
so loading a checkpoint downloaded from a mirror or a forum post can run arbitrary code. This
reader never imports PyTorch and never resolves a name the file asks for except from a short
allowlist, each entry mapped to a numpy-side stand-in defined here:

- ``collections.OrderedDict`` (the state_dict container itself);
- ``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``, ``_rebuild_parameter`` and
  ``_rebuild_parameter_with_state`` (they rebuild a tensor from a storage, an offset, a shape
  and strides; a Parameter is returned as its tensor);
- the typed storages ``torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage``
  (also under ``torch.cuda``, as old checkpoints saved from a GPU name them);
- ``torch.Size`` (a tuple).

Any other name (``os.system``, ``builtins.eval``, ``subprocess.Popen``, a pickled
``nn.Module`` class, ...) stops the load with :class:`CheckpointError` naming it.

Formats:

- zip (``torch.save`` since PyTorch 1.6): a zip archive with one top folder (any name) holding
  ``data.pkl`` (the pickled object tree, in which every storage is a persistent id
  ``("storage", StorageType, key, location, numel)``), ``data/<key>`` (the raw bytes of each
  storage), ``byteorder`` (``little`` or ``big``; little when absent) and ``version``.
- legacy (``_use_new_zipfile_serialization=False``, and the default before PyTorch 1.6, so
  also the 2017 files): consecutive pickles -- the magic number ``0x1950a86a20f9469cfc6c``,
  the protocol version 1001, a system-info dict, the object tree (persistent ids
  ``("storage", StorageType, root_key, location, numel, view_metadata)``) and the list of
  storage keys -- then, for each key in that order, an 8-byte little-endian element count and
  the storage's raw little-endian bytes.

Every tensor comes back as a new C-contiguous numpy array equal to ``tensor.numpy()``: the
storage offset, shape and strides are checked against the storage before anything is
allocated. A legacy file is read into memory whole, a zip archive entry by entry; either way
the peak is about twice the file size. Pickles are run by pickle's pure-Python unpickler (the
C one preallocates its memo table from indices the file chooses), about 0.1 s per 1000
tensors.

Limits:

- Reads dense tensors of dtypes float32, float64, float16, bfloat16 (returned as float32,
  exactly), int64, int32, int16, int8, uint8 and bool, including views, transposes and
  non-zero storage offsets, held in dicts, OrderedDicts, lists and tuples next to plain
  numbers and strings. Big-endian zip checkpoints are converted to native byte order; legacy
  storages are little-endian, as PyTorch writes them. Device locations (``cuda:0``) are
  ignored: every tensor comes back as a numpy array.
- Does not read: the tar format of the earliest PyTorch releases, TorchScript archives
  (``torch.jit.save``),
  quantized, sparse, complex, conjugated or meta tensors, tensors of dtypes without a typed
  storage (uint16/32/64, float8: ``_rebuild_tensor_v3``), tensor subclasses, and any other
  Python object -- a pickled ``nn.Module``, optimizer states holding numpy scalars, ``argparse``
  namespaces, a storage saved on its own. Such files are refused as a whole; save
  ``model.state_dict()`` instead.
- Shapes have at most 32 dimensions; offsets, sizes and strides are at most 2**62.
- A load may allocate at most 4 times the file's size plus 64 MiB (storage copies and result
  arrays together); a file whose tensors expand a small storage beyond that (stride-0 views)
  is refused.
- Zip entries must pass their CRC-32 check (PyTorch itself does not check it), each storage
  entry must hold exactly the bytes its tensors declare, and a legacy file's element counts
  must match its tensors' storages; trailing bytes after the last legacy storage are ignored.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from typing import BinaryIO, NamedTuple

import numpy as np

__all__ = ["CheckpointError", "load_state_dict", "read_torch_checkpoint"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
BUDGET_FACTOR = 4
BUDGET_SLACK = 64 * 2**20
MAX_DIMS = 32
MAX_COUNT = 2**62

# storage type name -> (numpy code of the elements as stored, dtype of the returned arrays)
_STORAGE_TYPES: dict[str, tuple[str, str]] = {
    "FloatStorage": ("f4", "float32"),
    "DoubleStorage": ("f8", "float64"),
    "HalfStorage": ("f2", "float16"),
    "BFloat16Storage": ("u2", "float32"),
    "LongStorage": ("i8", "int64"),
    "IntStorage": ("i4", "int32"),
    "ShortStorage": ("i2", "int16"),
    "CharStorage": ("i1", "int8"),
    "ByteStorage": ("u1", "uint8"),
    "BoolStorage": ("u1", "bool"),
}
_STORAGE_MODULES = ("torch", "torch.cuda")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")

_DAMAGED = "the file is damaged or incomplete; download it again"
_NOT_A_CHECKPOINT = (
    "is neither a zip checkpoint (torch.save, PyTorch >= 1.6) nor a legacy torch.save stream; "
    "the download may have failed (an HTML error page?) or the file is not a PyTorch checkpoint"
)
_DTYPES = "float32/64, float16, bfloat16, int8/16/32/64, uint8 or bool"
_RESAVE = "if you trust the file, load it with PyTorch and save model.state_dict() with torch.save"


class CheckpointError(ValueError):
    """A file is not a readable PyTorch state_dict checkpoint, or asks for code to run."""


class _Invalid(Exception):
    """A problem found while parsing; ``read_torch_checkpoint`` prefixes the file name."""


class _StorageType(NamedTuple):
    """Stand-in for ``torch.<Name>Storage`` in a persistent id (immutable: BUILD cannot
    alter it)."""

    name: str


class _Storage(NamedTuple):
    """A storage the pickle refers to; ``data`` is None while the legacy first pass catalogues."""

    name: str
    numel: int
    data: np.ndarray | None


class _Guarded(NamedTuple):
    """A callable handed to the pickle: immutable and without ``__dict__``, so no BUILD opcode
    can alter it."""

    call: Callable[..., object]

    def __call__(self, *args: object) -> object:
        return self.call(*args)


# (key, storage type name, numel) -> the storage's elements, or None when not read yet
_Fetch = Callable[[str, str, int], "np.ndarray | None"]


class _Budget:
    """Bytes a load may still allocate: ``BUDGET_FACTOR`` times the file size plus slack."""

    def __init__(self, file_size: int) -> None:
        self.left = BUDGET_FACTOR * file_size + BUDGET_SLACK

    def charge(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise _Invalid(
                f"{what} would need {nbytes} bytes, far more than a file of this size holds; "
                f"{_DAMAGED}"
            )
        self.left -= nbytes


class _Unpickler(pickle._Unpickler):
    """Unpickler that resolves only the allowlisted names, each to a stand-in defined here.

    It extends pickle's pure-Python unpickler: the C one sizes its memo table by the largest
    index a PUT opcode names, so a 9-byte pickle can make it allocate and zero gigabytes.
    ``fetch`` is None for pickles that may not refer to storages (the legacy header and key
    list); ``pid_length`` is 5 for zip persistent ids and 6 for legacy ones.
    """

    def __init__(
        self, stream: BinaryIO, budget: _Budget, fetch: _Fetch | None = None, pid_length: int = 0
    ) -> None:
        super().__init__(stream, encoding="utf-8")
        self.storages: dict[str, _Storage] = {}
        self._views: dict[str, _Storage] = {}
        self._budget = budget
        self._fetch = fetch
        self._pid_length = pid_length
        self._allowed: dict[tuple[str, str], object] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch", "Size"): _Guarded(tuple),
            ("torch._utils", "_rebuild_tensor"): _Guarded(self._tensor),
            ("torch._utils", "_rebuild_tensor_v2"): _Guarded(self._rebuild_tensor_v2),
            ("torch._utils", "_rebuild_parameter"): _Guarded(_rebuild_parameter),
            ("torch._utils", "_rebuild_parameter_with_state"): _Guarded(_rebuild_parameter),
        }

    def find_class(self, module: str, name: str) -> object:
        allowed = self._allowed.get((module, name))
        if allowed is not None:
            return allowed
        if module in _STORAGE_MODULES and name in _STORAGE_TYPES:
            return _StorageType(name)
        raise _Invalid(_refusal(str(module), str(name)))

    def persistent_load(self, pid: object) -> _Storage:
        if (
            self._fetch is None
            or not isinstance(pid, tuple)
            or len(pid) != self._pid_length
            or not isinstance(pid[0], str)
            or pid[0] != "storage"
        ):
            raise _Invalid(f"the pickle holds an unexpected persistent reference; {_DAMAGED}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise _Invalid(f"a storage reference names no known storage type; {_DAMAGED}")
        root = self._root(storage_type.name, _key(key), _count(numel, "storage size"))
        if self._pid_length == 5 or pid[5] is None:
            return root
        return self._view(root, pid[5])

    def _root(self, name: str, key: str, numel: int) -> _Storage:
        known = self.storages.get(key)
        if known is None:
            known = _Storage(name, numel, self._fetch(key, name, numel))
            self.storages[key] = known
        elif (known.name, known.numel) != (name, numel):
            raise _Invalid(f"storage {key} is referred to with two types or sizes; {_DAMAGED}")
        return known

    def _view(self, root: _Storage, metadata: object) -> _Storage:
        """A legacy storage view: ``(view_key, offset, numel)`` into ``root``."""
        if not isinstance(metadata, tuple) or len(metadata) != 3:
            raise _Invalid(f"a storage view is malformed; {_DAMAGED}")
        view_key = _key(metadata[0])
        if view_key in self._views:
            return self._views[view_key]
        offset = _count(metadata[1], "storage view offset")
        numel = _count(metadata[2], "storage view size")
        if offset + numel > root.numel:
            raise _Invalid(f"storage view {view_key} reaches past its storage; {_DAMAGED}")
        data = None if root.data is None else root.data[offset : offset + numel]
        self._views[view_key] = _Storage(root.name, numel, data)
        return self._views[view_key]

    def _rebuild_tensor_v2(
        self,
        storage: object,
        offset: object,
        size: object,
        stride: object,
        _requires_grad: object,
        _backward_hooks: object,
        metadata: object = None,
    ) -> np.ndarray | None:
        if metadata is not None and not (isinstance(metadata, dict) and not metadata):
            raise _Invalid(
                "a tensor carries metadata (conjugate or negative bit), which this reader does "
                f"not support; {_RESAVE}"
            )
        return self._tensor(storage, offset, size, stride)

    def _tensor(
        self, storage: object, offset: object, size: object, stride: object
    ) -> np.ndarray | None:
        """The tensor ``torch.empty(0).set_(storage, offset, size, stride)`` as a numpy copy."""
        if not isinstance(storage, _Storage):
            raise _Invalid(f"a tensor is rebuilt from something that is not a storage; {_DAMAGED}")
        offset = _count(offset, "storage offset")
        shape, strides = _dims(size, "shape"), _dims(stride, "stride")
        if len(shape) != len(strides):
            raise _Invalid(
                f"tensor shape {shape} and strides {strides} differ in length; {_DAMAGED}"
            )
        numel = math.prod(shape)
        last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
        if numel and last >= storage.numel:
            raise _Invalid(
                f"a tensor of shape {shape}, strides {strides} and offset {offset} reaches past "
                f"its storage of {storage.numel} elements; {_DAMAGED}"
            )
        if storage.data is None:
            return None
        data = storage.data
        self._budget.charge(numel * data.itemsize, f"a tensor of shape {shape}")
        if numel == 0:
            raw = np.empty(shape, data.dtype)
        else:
            view = np.lib.stride_tricks.as_strided(
                data[offset:],
                shape=shape,
                strides=tuple(s * data.itemsize for s in strides),
                writeable=False,
            )
            raw = np.array(view, order="C")
        return _to_public_dtype(raw, storage.name)


def _rebuild_parameter(data: object, *_args: object) -> object:
    """``nn.Parameter`` stand-in: the tensor itself (``requires_grad``, hooks, state dropped)."""
    return data


def _refusal(module: str, name: str) -> str:
    """Why ``module.name`` is refused, naming it as Python 3 would import it (protocol-2 pickles
    write ``builtins`` as ``__builtin__`` and ``subprocess`` as ``commands``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    qualified = f"{module}.{name}"[:200]
    if module.split(".")[0] in ("torch", "numpy"):
        return (
            f"checkpoint uses {qualified}, which this reader does not support: it reads only "
            f"dense {_DTYPES} tensors in dicts, lists and tuples; {_RESAVE}"
        )
    return (
        f"checkpoint refers to {qualified}, which a weights file never needs; refusing to load "
        "it. It may be an attempt to run code on your machine: delete the file unless you know "
        "where it came from"
    )


def _key(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"a storage key is not a string; {_DAMAGED}")
    return value


def _count(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        shown = value if type(value) is int and abs(value) <= 2**64 else type(value).__name__
        raise _Invalid(f"invalid {what} {shown}; {_DAMAGED}")
    return value


def _dims(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > MAX_DIMS:
        raise _Invalid(
            f"a tensor's {what} is not a tuple of at most {MAX_DIMS} numbers; {_DAMAGED}"
        )
    return tuple(_count(item, what) for item in value)


def _stored_dtype(name: str, byteorder: str) -> np.dtype:
    return np.dtype(_STORAGE_TYPES[name][0]).newbyteorder("<" if byteorder == "little" else ">")


def _to_public_dtype(raw: np.ndarray, name: str) -> np.ndarray:
    """Stored elements -> the dtype ``tensor.numpy()`` has (bfloat16 widened to float32)."""
    if name == "BFloat16Storage":
        bits = raw.astype(np.uint32)
        bits <<= 16
        return bits.view(np.float32)
    return raw.astype(_STORAGE_TYPES[name][1], copy=False)


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    """The entry's bytes, CRC-checked. Reading exactly the declared size keeps a compressed
    entry from inflating beyond it (``ZipFile.read`` inflates in chunks of up to 2 GiB)."""
    budget.charge(info.file_size, f"archive entry {info.filename}")
    with archive.open(info) as entry:
        content = entry.read(info.file_size)
    if len(content) != info.file_size:
        raise _Invalid(f"archive entry {info.filename} is truncated; {_DAMAGED}")
    return content


def _read_zip(file: BinaryIO, file_size: int) -> object:
    budget = _Budget(file_size)
    with zipfile.ZipFile(file) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        if any(name.endswith("/constants.pkl") for name in infos):
            raise _Invalid(
                "is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; load it "
                "with torch.jit.load and save its state_dict() with torch.save"
            )
        pickles = [name for name in infos if name.count("/") == 1 and name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise _Invalid(
                "is a zip archive without exactly one <folder>/data.pkl, so not a torch.save "
                "checkpoint"
            )
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = _zip_byteorder(archive, infos.get(prefix + "byteorder"), budget)

        def fetch(key: str, name: str, numel: int) -> np.ndarray:
            info = infos.get(f"{prefix}data/{key}")
            if info is None:
                raise _Invalid(f"storage data/{key} is missing from the archive; {_DAMAGED}")
            dtype = _stored_dtype(name, byteorder)
            if info.file_size != numel * dtype.itemsize:
                raise _Invalid(
                    f"storage data/{key} holds {info.file_size} bytes but its tensors need "
                    f"{numel * dtype.itemsize}; {_DAMAGED}"
                )
            return np.frombuffer(_read_entry(archive, info, budget), dtype=dtype)

        data_pkl = _read_entry(archive, infos[pickles[0]], budget)
        return _Unpickler(io.BytesIO(data_pkl), budget, fetch, pid_length=5).load()


def _zip_byteorder(archive: zipfile.ZipFile, info: zipfile.ZipInfo | None, budget: _Budget) -> str:
    if info is None:
        return "little"
    if info.file_size > 16:
        raise _Invalid(f"the byteorder record is malformed; {_DAMAGED}")
    byteorder = _read_entry(archive, info, budget)
    if byteorder not in (b"little", b"big"):
        raise _Invalid(f"unknown byte order {byteorder!r}; {_DAMAGED}")
    return byteorder.decode()


def _read_legacy(data: bytes) -> object:
    budget = _Budget(len(data))
    stream = io.BytesIO(data)
    magic = _Unpickler(stream, budget).load()
    if type(magic) is not int or magic != LEGACY_MAGIC:
        raise _Invalid(_NOT_A_CHECKPOINT)
    version = _Unpickler(stream, budget).load()
    if type(version) is not int or version != LEGACY_PROTOCOL:
        raise _Invalid(f"is a legacy checkpoint of unknown protocol version; {_DAMAGED}")
    if not isinstance(_Unpickler(stream, budget).load(), dict):
        raise _Invalid(f"the legacy system-info record is malformed; {_DAMAGED}")
    start = stream.tell()
    # First pass: learn each storage's type and size (its bytes come after the pickle).
    catalogue = _Unpickler(stream, budget, lambda key, name, numel: None, pid_length=6)
    catalogue.load()
    keys = _Unpickler(stream, budget).load()
    storages = _legacy_storages(data, stream.tell(), keys, catalogue.storages)
    stream.seek(start)
    second = _Unpickler(stream, budget, lambda key, name, numel: storages[key], pid_length=6)
    return second.load()


def _legacy_storages(
    data: bytes, position: int, keys: object, declared: dict[str, _Storage]
) -> dict[str, np.ndarray]:
    """Locates each storage's bytes: an 8-byte element count, then the elements."""
    if (
        not isinstance(keys, list)
        or not all(isinstance(key, str) for key in keys)
        or len(set(keys)) != len(keys)
    ):
        raise _Invalid(f"the legacy storage key list is malformed; {_DAMAGED}")
    if set(keys) != set(declared):
        raise _Invalid(f"the legacy storage key list does not match the tensors; {_DAMAGED}")
    storages = {}
    for key in keys:
        storage = declared[key]
        dtype = _stored_dtype(storage.name, "little")
        if position + 8 > len(data):
            raise _Invalid(f"the file ends before storage {key}; {_DAMAGED}")
        count = int.from_bytes(data[position : position + 8], "little")
        if count != storage.numel:
            raise _Invalid(
                f"storage {key} holds {count} elements but its tensors say {storage.numel}; "
                f"{_DAMAGED}"
            )
        start = position + 8
        position = start + count * dtype.itemsize
        if position > len(data):
            raise _Invalid(f"the file ends inside storage {key}; {_DAMAGED}")
        storages[key] = np.frombuffer(data, dtype=dtype, count=count, offset=start)
    return storages


def _read(file: BinaryIO, file_size: int) -> object:
    if file_size == 0:
        raise _Invalid("is empty; download it again")
    head = file.read(512)
    file.seek(0)
    if head.startswith(b"PK\x03\x04"):
        return _without_stand_ins(_read_zip(file, file_size))
    if head[257:262] == b"ustar":
        raise _Invalid(
            "tar-format checkpoints from PyTorch < 0.4 are not supported; load the file with "
            "that PyTorch version and save it again with torch.save"
        )
    if head.startswith(b"\x80"):
        return _without_stand_ins(_read_legacy(file.read()))
    raise _Invalid(_NOT_A_CHECKPOINT)


def _without_stand_ins(tree: object) -> object:
    """``tree``, checked to hold no stand-in outside a tensor (a bare storage, a storage type,
    a rebuild function or the OrderedDict class placed as a value)."""
    seen: set[int] = set()
    pending = [tree]
    while pending:
        item = pending.pop()
        if isinstance(item, (_Storage, _StorageType, _Guarded)) or item is collections.OrderedDict:
            raise _Invalid(
                "holds a bare storage or a PyTorch internal outside any tensor, which this reader "
                f"does not return; {_RESAVE}"
            )
        if not isinstance(item, (list, tuple, set, frozenset, dict)) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
            pending.extend(getattr(item, "__dict__", {}).values())  # set by BUILD
        else:
            pending.extend(item)
    return tree


def read_torch_checkpoint(path: str | os.PathLike[str] | bytes, name: str | None = None) -> object:
    """Read a ``torch.save`` file (zip or legacy format) without PyTorch and without running code.

    ``path`` is a file, or the file's bytes (read from a ``.pth.zip``) with ``name`` to show in
    messages. Returns the saved object tree with every tensor replaced by a C-contiguous numpy
    array equal to ``tensor.numpy()`` (bfloat16 tensors as float32). Raises ``CheckpointError``
    for a file that is damaged, is not a PyTorch checkpoint, holds something other than tensors
    in plain containers, or names code to run; ``OSError`` when the file cannot be opened.
    """
    in_memory = isinstance(path, (bytes, bytearray))
    shown = name or ("the checkpoint" if in_memory else os.fspath(path))
    with io.BytesIO(path) if in_memory else open(path, "rb") as file:
        size = len(path) if in_memory else os.fstat(file.fileno()).st_size
        try:
            return _read(file, size)
        except _Invalid as error:
            raise CheckpointError(f"{shown}: {error}") from None
        except Exception as error:  # pickle, zip and numpy errors on damaged data
            detail = f"{type(error).__name__}: {error}"[:300]
            raise CheckpointError(
                f"{shown}: cannot be read as a PyTorch checkpoint ({detail}); {_DAMAGED}"
            ) from error


def load_state_dict(
    path: str | os.PathLike[str] | bytes, name: str | None = None
) -> dict[str, np.ndarray]:
    """Read a checkpoint's state_dict as ``{parameter name: numpy array}``, in file order.

    Unwraps ``{"state_dict": ...}`` (or ``"model_state_dict"`` / ``"model"`` holding tensors),
    strips the ``"module."`` prefix ``nn.DataParallel`` adds and drops non-tensor entries;
    scalar tensors such as ``num_batches_tracked`` are kept as 0-d arrays. ``path`` and
    ``name`` as in ``read_torch_checkpoint``.
    """
    shown = name or ("the checkpoint" if isinstance(path, (bytes, bytearray)) else os.fspath(path))
    state = _unwrap(read_torch_checkpoint(path, shown))
    arrays: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if isinstance(key, str) and isinstance(value, np.ndarray):
            name = key.removeprefix("module.")
            if name in arrays:
                raise CheckpointError(
                    f"{shown}: two tensors are named {name!r} once the 'module.' "
                    "prefix is removed; save a single model's state_dict()"
                )
            arrays[name] = value
    if not arrays:
        raise CheckpointError(
            f"{shown}: no tensors found; expected a state_dict (parameter names "
            "mapped to tensors), as written by torch.save(model.state_dict(), path)"
        )
    return arrays


def _unwrap(tree: object) -> Mapping[object, object]:
    if not isinstance(tree, Mapping):
        return {}
    for key in _WRAPPER_KEYS:
        inner = tree.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, np.ndarray) for v in inner.values()):
            return inner
    return tree
