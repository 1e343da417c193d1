"""Reads PyTorch checkpoints (``torch.save`` files) with numpy alone, without running code.

An ordinary unpickler calls whatever a file names, so loading a downloaded ``.pth`` file can
run arbitrary code. This reader's unpickler resolves only the few globals a ``state_dict``
needs, each to a stand-in written here (``collections.OrderedDict``, tensor rebuild calls,
storage types, ``torch.Size``); any other global is refused with ``CheckpointError`` naming
it. PyTorch is never imported.

Formats:
- zip (PyTorch >= 1.6 default): a zip archive with one top folder holding ``data.pkl`` (the
  object tree; storages are persistent ids ``("storage", StorageType, key, location,
  numel)``), ``data/<key>`` (raw storage bytes) and ``byteorder``.
- legacy (``_use_new_zipfile_serialization=False``, and the 2017 DRN files): consecutive
  pickles (magic number, protocol version 1001, system info, the object tree with persistent
  ids ``("storage", StorageType, key, location, numel, view_metadata)``, the list of storage
  keys), then for each key an 8-byte little-endian element count and the raw bytes.

Limits:
- Tensors: float32/64, float16, bfloat16 (returned as float32, exactly), int8/16/32/64,
  uint8 and bool, dense and strided (views, transposes, offsets); little- and big-endian.
- Not read: the pre-0.4 tar format, TorchScript archives, quantized or sparse tensors,
  tensor subclasses, and checkpoints holding other Python objects (an optimizer state with
  numpy scalars, a whole pickled ``nn.Module``): save ``model.state_dict()`` instead.
- Offsets, shapes and strides are checked against the storage before any allocation; a
  view may not be more than 16 times larger than its storage (expanded views).
"""

import collections
import io
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_PICKLE_BYTES = 256 * 2**20
MAX_VIEW_GROWTH = 16

STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class CheckpointError(ValueError):
    """A file is not a readable PyTorch state_dict, or asks for something a weights file
    never needs."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _StorageRef:
    """A storage named in the pickle; its bytes are attached once read."""

    def __init__(self, storage_type, key, numel):
        self.dtype = storage_type.dtype
        self.key = key
        self.numel = numel


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("a tensor is rebuilt from something that is not a storage")
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *unused):
    return data


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
}
ALLOWED.update({("torch", name): _StorageType(name) for name in STORAGE_DTYPES})


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, persistent_load):
        super().__init__(file)
        self._persistent = persistent_load

    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"checkpoint refers to {module}.{name}, which a weights file never needs; "
                "refusing to load it (it could run code). Only state_dicts of tensors are read."
            ) from None

    def persistent_load(self, pid):
        return self._persistent(pid)


def _storage_from_pid(pid, legacy):
    expected = 6 if legacy else 5
    if not isinstance(pid, tuple) or len(pid) != expected or pid[0] != "storage":
        raise CheckpointError(f"unexpected persistent id {pid!r:.80}")
    storage_type, key, numel = pid[1], str(pid[2]), pid[4]
    if not isinstance(storage_type, _StorageType):
        raise CheckpointError(f"unsupported storage type {storage_type!r:.60}")
    if not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"storage {key} has an invalid size {numel!r:.40}")
    if legacy and pid[5] is not None:
        raise CheckpointError("storage views (pre-1.0 storage slicing) are not supported")
    return _StorageRef(storage_type, key, numel)


def _decode(raw, dtype, numel, big_endian):
    if dtype == "bfloat16":
        bits = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2", count=numel)
        return (bits.astype("<u4") << 16).view("<f4")
    np_dtype = np.dtype(dtype)
    if big_endian and np_dtype.itemsize > 1:
        np_dtype = np_dtype.newbyteorder(">")
    return np.frombuffer(raw, dtype=np_dtype, count=numel).astype(np.dtype(dtype).newbyteorder("="))


def _itemsize(dtype):
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _materialize(tensor, storages):
    ref = tensor.storage
    flat = storages[ref.key]
    if not (isinstance(tensor.offset, int) and all(isinstance(v, int) for v in tensor.size)
            and all(isinstance(v, int) for v in tensor.stride)):
        raise CheckpointError("a tensor has a non-integer offset, shape or stride")
    if len(tensor.size) != len(tensor.stride) or tensor.offset < 0:
        raise CheckpointError(f"a tensor has an inconsistent shape {tensor.size} / stride "
                              f"{tensor.stride} / offset {tensor.offset}")
    if any(v < 0 for v in tensor.size) or any(v < 0 for v in tensor.stride):
        raise CheckpointError(f"a tensor has a negative shape {tensor.size} or stride "
                              f"{tensor.stride}")
    count = int(np.prod(tensor.size, dtype=object))
    if count == 0:
        return np.zeros(tensor.size, dtype=flat.dtype)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
    if last >= flat.size:
        raise CheckpointError(
            f"a tensor of shape {tensor.size} reaches element {last} of a storage of "
            f"{flat.size} elements: the file is truncated or corrupt"
        )
    if count > MAX_VIEW_GROWTH * max(flat.size, 1):
        raise CheckpointError(f"a tensor of shape {tensor.size} is far larger than its storage")
    start = flat[tensor.offset:]
    view = np.lib.stride_tricks.as_strided(
        start, shape=tensor.size, strides=[s * flat.itemsize for s in tensor.stride],
        writeable=False,
    )
    return np.array(view)


def _replace_tensors(obj, storages):
    if isinstance(obj, _LazyTensor):
        return _materialize(obj, storages)
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _replace_tensors(value, storages)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_replace_tensors(v, storages) for v in obj)
    return obj


def _read_zip(path, archive):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError("the zip archive has no single '<folder>/data.pkl'")
    prefix = pickles[0][: -len("data.pkl")]
    info = archive.getinfo(pickles[0])
    if info.file_size > MAX_PICKLE_BYTES:
        raise CheckpointError(f"data.pkl claims {info.file_size} bytes: not a state_dict")
    big_endian = False
    if f"{prefix}byteorder" in names:
        order = archive.read(f"{prefix}byteorder").strip()
        if order not in (b"little", b"big"):
            raise CheckpointError(f"unknown byte order {order[:20]!r}")
        big_endian = order == b"big"
    refs = {}

    def persistent_load(pid):
        ref = _storage_from_pid(pid, legacy=False)
        known = refs.setdefault(ref.key, ref)
        if known.dtype != ref.dtype:
            raise CheckpointError(f"storage {ref.key} is used with two dtypes")
        return known

    with archive.open(info) as stream:
        obj = _Unpickler(io.BytesIO(stream.read(MAX_PICKLE_BYTES + 1)), persistent_load).load()
    storages = {}
    for key, ref in refs.items():
        name = f"{prefix}data/{key}"
        if name not in names:
            raise CheckpointError(f"the storage entry {name!r} is missing from the archive")
        needed = ref.numel * _itemsize(ref.dtype)
        with archive.open(name) as stream:
            raw = stream.read(needed)
        if len(raw) < needed:
            raise CheckpointError(
                f"the storage entry {name!r} holds {len(raw)} bytes, {needed} are needed"
            )
        storages[key] = _decode(raw, ref.dtype, ref.numel, big_endian)
    return _replace_tensors(obj, storages)


def _read_legacy(path, stream, size):
    def no_storage(pid):
        raise CheckpointError("unexpected storage reference outside the object tree")

    def load_plain():
        return _Unpickler(stream, no_storage).load()

    if load_plain() != LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (wrong magic number)")
    if load_plain() != LEGACY_PROTOCOL:
        raise CheckpointError("unsupported legacy protocol version")
    info = load_plain()
    big_endian = isinstance(info, dict) and info.get("little_endian") is False
    refs = {}

    def persistent_load(pid):
        ref = _storage_from_pid(pid, legacy=True)
        return refs.setdefault(ref.key, ref)

    obj = _Unpickler(stream, persistent_load).load()
    keys = load_plain()
    if not isinstance(keys, list):
        raise CheckpointError("the list of storage keys is missing")
    storages = {}
    for key in keys:
        key = str(key)
        if key not in refs:
            raise CheckpointError(f"storage {key} is listed but never used")
        ref = refs[key]
        header = stream.read(8)
        if len(header) < 8:
            raise CheckpointError(f"the file ends before storage {key}")
        (numel,) = struct.unpack("<q", header)
        needed = numel * _itemsize(ref.dtype)
        if numel < 0 or needed > size - stream.tell():
            raise CheckpointError(
                f"storage {key} claims {numel} elements, more than the file holds: truncated?"
            )
        storages[key] = _decode(stream.read(needed), ref.dtype, numel, big_endian)
    missing = set(refs) - set(storages)
    if missing:
        raise CheckpointError(f"storages {sorted(missing)[:5]} are used but not in the file")
    return _replace_tensors(obj, storages)


def read_torch_checkpoint(path):
    """Reads a ``torch.save`` file; every tensor becomes a numpy array (a contiguous copy).

    Raises:
        CheckpointError: the file is not a readable checkpoint or refers to a global that a
            weights file never needs (nothing of it is executed).
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise CheckpointError("the file is empty")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _read_zip(path, archive)
        with open(path, "rb") as stream:
            head = stream.read(2)
            stream.seek(0)
            if head[:1] != b"\x80" and tarfile.is_tarfile(path):
                raise CheckpointError(
                    "tar-format checkpoints from PyTorch < 0.4 are not supported; re-save it "
                    "with a newer PyTorch"
                )
            return _read_legacy(path, stream, size)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    except Exception as error:  # corrupt input of any kind: one clear error type
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {error})"
        ) from None


def load_state_dict(path):
    """``read_torch_checkpoint`` narrowed to a flat ``{name: array}`` state_dict.

    Unwraps ``{"state_dict": ...}`` (and ``"model"``/``"model_state_dict"``) and strips the
    ``module.`` prefix that ``nn.DataParallel`` adds.
    """
    obj = read_torch_checkpoint(path)
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state_dict (a dict of tensors)")
    arrays = {
        (key[len("module."):] if key.startswith("module.") else key): value
        for key, value in obj.items()
        if isinstance(key, str) and isinstance(value, np.ndarray)
    }
    if not arrays:
        raise CheckpointError(f"{path}: no tensors found; expected a state_dict")
    return arrays
