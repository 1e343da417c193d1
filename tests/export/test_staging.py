"""keras_drn.export.staging: the work happens in `.<name>.<pid>.<hex>.staging` beside the
destination; a killed export's folder is removed by the next export, a running one's is left
alone; installed files get the umask's permissions (not mkstemp's 0600)."""

import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from keras_drn.export import export
from keras_drn.export import staging
from tests.export.helpers import tiny_segmenter

ROOT = pathlib.Path(__file__).resolve().parents[2]


def staging_folders(directory):
    return sorted(p.name for p in pathlib.Path(directory).iterdir()
                  if p.name.endswith(staging.SUFFIX))


def modes(path):
    """``{relative path: permission bits}`` of ``path`` and everything under it."""
    path = pathlib.Path(path)
    entries = [path, *path.rglob("*")] if path.is_dir() else [path]
    return {str(p.relative_to(path.parent)): stat.S_IMODE(p.stat().st_mode) for p in entries}


# umask 027 on every backend (the subprocess writer of JAX and PyTorch inherits the umask), the
# default 022 on TensorFlow only (tests/conftest.py): mkstemp's 0600 fails either.
@pytest.mark.parametrize("umask, file_mode, folder_mode", [
    pytest.param(0o022, 0o644, 0o755, id="umask022", marks=pytest.mark.tensorflow_only),
    pytest.param(0o027, 0o640, 0o750, id="umask027"),
])
def test_installed_files_get_the_umask_permissions(tmp_path, umask, file_mode, folder_mode):
    pytest.importorskip("tensorflow")
    previous = os.umask(umask)
    try:
        export(tiny_segmenter(), tmp_path / "sm", verbose=False)
        export(tiny_segmenter(), tmp_path / "m.onnx", format="onnx", input_shape=(8, 8),
               verbose=False)
    finally:
        os.umask(previous)
    saved_model = modes(tmp_path / "sm")
    assert saved_model.pop("sm") == folder_mode
    folders = {name for name in saved_model if (tmp_path / name).is_dir()}
    assert folders and {saved_model[name] for name in folders} == {folder_mode}
    assert {mode for name, mode in saved_model.items() if name not in folders} == {file_mode}
    assert modes(tmp_path / "m.onnx") == {"m.onnx": file_mode}
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "sm"]


def test_stale_staging_of_a_dead_process_is_removed_and_a_live_one_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.tflite.{dead.pid}.0123456789ab.staging"
    live = tmp_path / f".other.tflite.{os.getpid()}.0123456789ab.staging"
    unrelated = tmp_path / f".notes.{dead.pid}.txt"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "m.tflite").write_bytes(b"half")
    unrelated.write_text("not an export's")
    assert staging.remove_stale(tmp_path) == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, unrelated.name])


def test_a_killed_export_is_cleaned_up_by_the_next_one(tmp_path):
    """SIGKILL while the export runs leaves its staging folder; the next export to the same
    folder deletes it and succeeds."""
    pytest.importorskip("tensorflow")
    target = tmp_path / "sm"
    # TensorFlow backend: the killed process writes itself (no orphaned writer subprocess).
    script = textwrap.dedent(f"""
        import keras
        from keras_drn.export import export
        from tests.export.helpers import tiny_segmenter
        export(tiny_segmenter(), {str(target)!r}, verbose=False)
    """)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not staging_folders(tmp_path):
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the export never started staging"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    left = staging_folders(tmp_path)
    assert len(left) == 1 and left[0].startswith(f".sm.{process.pid}.")
    assert not target.exists()

    report = export(tiny_segmenter(), target, verbose=False)
    assert report.passed and (target / "saved_model.pb").is_file()
    assert os.listdir(tmp_path) == ["sm"]
