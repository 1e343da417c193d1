import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from keras_drn.weights.torch_reader import CheckpointError, load_state_dict, read_torch_checkpoint

torch = pytest.importorskip("torch")


def _state_dict():
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    state = module.state_dict()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state.update(
        transposed=base.t(), view=base[1:, 2:5], half=base.half(), bf16=base.bfloat16() / 7,
        double=base.double(), long=torch.tensor([1, -2]), int=torch.tensor([3], dtype=torch.int32),
        byte=torch.tensor([255], dtype=torch.uint8), flags=torch.tensor([True, False]),
        scalar=torch.tensor(7.5), empty=torch.zeros(0, 3),
    )
    return state


def _expected(tensor):
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_round_trip_equals_torch(zip_format, tmp_path):
    state = _state_dict()
    path = tmp_path / "ckpt.pth"
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    torch.save(wrapped, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_state_dict(path)
    assert list(loaded) == list(state)
    for key, tensor in state.items():
        assert loaded[key].shape == tuple(tensor.shape), key
        np.testing.assert_array_equal(loaded[key], _expected(tensor), err_msg=key)
    raw = read_torch_checkpoint(path)
    assert raw["epoch"] == 3 and "module.0.weight" in raw["state_dict"]


def test_reader_never_imports_torch(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"w": torch.ones(2, 3)}, path)
    code = ("import sys; sys.modules['torch'] = None; "
            "from keras_drn.weights.torch_reader import load_state_dict; "
            f"print(load_state_dict({str(path)!r})['w'].sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "KERAS_BACKEND": "jax"}, check=True)
    assert out.stdout.strip().endswith("6.0")


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _zip_with_pickle(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_pickle_runs_nothing(zip_format, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Exploit(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if zip_format:
        _zip_with_pickle(path, payload)
    else:
        stream = io.BytesIO()
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, stream, protocol=2)
        stream.write(payload)
        path.write_bytes(stream.getvalue())
    with pytest.raises(CheckpointError, match=r"refers to (posix|os)\.system.*never needs"):
        load_state_dict(path)
    assert not marker.exists()


def test_unexpected_globals_are_named(tmp_path):
    path = tmp_path / "evil.pth"
    _zip_with_pickle(path, b"\x80\x02csubprocess\nPopen\nq\x00.")
    with pytest.raises(CheckpointError, match="subprocess.Popen"):
        load_state_dict(path)
    _zip_with_pickle(path, b"\x80\x02cbuiltins\neval\nq\x00.")
    with pytest.raises(CheckpointError, match="builtins.eval"):
        load_state_dict(path)


def _valid_bytes(tmp_path, zip_format):
    path = tmp_path / "valid.pth"
    torch.save({"w": torch.arange(64, dtype=torch.float32).reshape(8, 8)}, path,
               _use_new_zipfile_serialization=zip_format)
    return path.read_bytes()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_broken_files_fail_cleanly(zip_format, tmp_path):
    good = _valid_bytes(tmp_path, zip_format)
    path = tmp_path / "bad.pth"
    cases = [b"", os.urandom(512), good[: len(good) // 2], good[:-9], good[:40]]
    for data in cases:
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="bad.pth"):
            load_state_dict(path)


def test_missing_or_short_storage_entries(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(100)}, good)
    with zipfile.ZipFile(good) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    storage = next(name for name in entries if "/data/" in name)
    for change in ("missing", "short"):
        path = tmp_path / f"{change}.pth"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in entries.items():
                if name == storage and change == "missing":
                    continue
                archive.writestr(name, data[:40] if name == storage else data)
        with pytest.raises(CheckpointError, match="missing|holds 40 bytes"):
            load_state_dict(path)


class _Storage:
    pass


class _Tensor:
    def __init__(self, size, stride, offset=0):
        self.args = (_Storage(), offset, size, stride, False, {})

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", 4)
        return None


@pytest.mark.parametrize(
    "size, stride, offset, match",
    [
        ((10**8,), (1,), 0, "reaches element"),
        ((-3,), (1,), 0, "negative shape"),
        ((2, 2), (2, -1), 0, "negative shape"),
        ((4,), (1,), 2, "reaches element"),
        ((2,), (1, 1), 0, "inconsistent"),
        ((10**7, 10**7), (0, 0), 0, "far larger than its storage"),
    ],
)
def test_absurd_shapes_are_refused_before_allocating(size, stride, offset, match, tmp_path):
    stream = io.BytesIO()
    _Pickler(stream, protocol=2).dump({"w": _Tensor(size, stride, offset)})
    path = tmp_path / "absurd.pth"
    _zip_with_pickle(path, stream.getvalue())
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/data/0", b"\x00" * 16)
    with pytest.raises(CheckpointError, match=match):
        load_state_dict(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        load_state_dict(path)
