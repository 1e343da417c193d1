"""keras_drn.workflows.runs: the run folder survives SIGKILL at every write, refuses a second trainer
and a different run, names damaged model files, and writes with the umask's permissions.

The kill tests run a tiny training in a subprocess that SIGKILLs itself at one write point
(``keras_drn.atomic.write_atomically`` is wrapped by the child script: before the rename, or
with the temporary file half written), then rerun it to completion and check what a user
would see: the epoch it resumed at, a log.csv with one row per epoch, a loadable best.keras.
"""

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest

from keras_drn import atomic
from keras_drn.workflows import runs
from tests.cli.helpers import refused

CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import keras
    from keras_drn import atomic
    from keras_drn.workflows import runs
    from keras_drn.workflows.training import training_callbacks

    work_dir, epochs, kill_name, kill_count, how = sys.argv[1:6]
    epochs, kill_count = int(epochs), int(kill_count)
    seen = {"n": 0}
    real = atomic.write_atomically

    def write_atomically(path, write, *args, **kwargs):
        if os.path.basename(str(path)).startswith(kill_name):
            seen["n"] += 1
            if seen["n"] == kill_count:
                if how == "torn":  # die with the temporary file half written
                    temporary = atomic.temporary_path(path)
                    write(str(temporary))
                    size = os.path.getsize(temporary)
                    with open(temporary, "r+b") as stream:
                        stream.truncate(size // 2)
                else:  # "before-rename": the new file complete, not yet in place
                    write(str(atomic.temporary_path(path)))
                os.kill(os.getpid(), signal.SIGKILL)
        return real(path, write, *args, **kwargs)

    atomic.write_atomically = write_atomically
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    labels = (images[..., 0] > 0).astype("int32")
    callbacks = training_callbacks(work_dir, monitor="val_loss")
    model.fit(images, labels, batch_size=4, epochs=epochs, validation_data=(images, labels),
              shuffle=False, verbose=0, callbacks=callbacks)
    print("RESUMED", callbacks[0].restored_epoch)
    print("ITERATIONS", int(keras.ops.convert_to_numpy(model.optimizer.iterations)))
""")


def _child(tmp_path, work_dir, epochs=3, kill_name="-", kill_count=0, how="before-rename"):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(script), str(work_dir), str(epochs), kill_name, str(kill_count),
         how], capture_output=True, text=True, env=env, timeout=600)


def _log_epochs(work_dir):
    with open(work_dir / "log.csv", newline="") as stream:
        return [int(row["epoch"]) for row in csv.DictReader(stream)]


# Write order per epoch: best.keras (if better), log.csv, state/epoch-N.weights.h5,
# state/state.json. (file prefix, which write of it, how): each kills epoch 2's writes.
KILL_POINTS = [
    ("epoch-", 2, "torn"),            # resume weights half written
    ("state.json", 2, "before-rename"),  # weights in place, state not yet naming them
    ("best.keras", 2, "torn"),        # best model half written
    ("log.csv", 2, "torn"),           # log half written
]


@pytest.mark.slow  # 8 training subprocesses: file-level behaviour, one backend is enough
@pytest.mark.parametrize("kill_name,kill_count,how", KILL_POINTS)
def test_sigkill_at_each_write_point_resumes_at_the_last_finished_epoch(
        tmp_path, kill_name, kill_count, how):
    work_dir = tmp_path / "run"
    killed = _child(tmp_path, work_dir, kill_name=kill_name, kill_count=kill_count, how=how)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = runs.read_state(work_dir / "state")
    assert state["epoch"] == 1  # epoch 2 (index 1) never finished its state
    finished = _child(tmp_path, work_dir)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "RESUMED 1" in finished.stdout
    assert "ITERATIONS 6" in finished.stdout  # 2 steps per epoch, the step count restored
    assert _log_epochs(work_dir) == [0, 1, 2]  # one row per epoch, the torn one replaced
    keras.saving.load_model(work_dir / "best.keras")  # whole, whichever epoch it holds
    leftovers = [p.name for p in work_dir.rglob("*") if atomic.TEMPORARY_SUFFIX in p.name]
    assert leftovers == []
    assert runs.read_state(work_dir / "state")["epoch"] == 3


@pytest.mark.slow
def test_a_damaged_latest_resume_file_falls_back_to_the_previous_epoch(tmp_path, capsys):
    work_dir = tmp_path / "run"
    assert _child(tmp_path, work_dir, epochs=2).returncode == 0
    state = runs.read_state(work_dir / "state")
    latest = work_dir / "state" / state["weights"]
    latest.write_bytes(latest.read_bytes()[:1000])  # torn by a disk or a copy
    finished = _child(tmp_path, work_dir, epochs=3)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "RESUMED 1" in finished.stdout
    assert "resuming from the previous one, after epoch 1" in finished.stdout
    assert _log_epochs(work_dir) == [0, 1, 2]


def test_a_second_trainer_on_the_same_folder_is_refused(tmp_path):
    folder = runs.RunFolder(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from keras_drn import runs\n"
         "with runs.RunFolder(sys.argv[1]).lock():\n    print('locked', flush=True)\n"
         "    time.sleep(60)", str(folder.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(runs.RunError, match=f"in use by another training process "
                                                f"\\(pid {holder.pid}\\)"):
            with folder.lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder.lock():  # a killed holder leaves no lock behind
        pass


def _info(**changes):
    info = {"task": "segmentation", "data": "synthetic", "num_classes": 4,
            "class_names": ["a", "b", "c", "d"], "size": 32, "crop_size": 32, "seed": 0,
            "backbone": "drn_d_22", "head": "drn", "context": None, "anti_alias": None,
            "upsampling": "deconv", "backbone_weights": None, "mean": [0.5] * 3,
            "std": [0.2] * 3, "epochs": 2}
    info.update(changes)
    return info


def test_a_rerun_with_other_data_or_classes_is_refused_naming_what_differs(tmp_path):
    folder = runs.RunFolder(tmp_path / "run")
    with folder.lock():
        folder.start(_info())
        (folder.path / "model.keras").write_bytes(b"old")
        with pytest.raises(runs.RunError, match="data: 'synthetic' -> 'tfds:oxford_iiit_pet'.*"
                                                "num_classes: 4 -> 3.*--overwrite"):
            folder.start(_info(data="tfds:oxford_iiit_pet", num_classes=3))
        assert json.loads(folder.info_path.read_text())["data"] == "synthetic"  # untouched
        # More epochs and another batch size are the same run, extended.
        assert folder.start(_info(epochs=5, batch_size=2))["epochs"] == 5
        info = folder.start(_info(backbone="drn_c_26"), overwrite=True)
        assert info["backbone"] == "drn_c_26" and not (folder.path / "model.keras").exists()


def test_a_run_that_stopped_before_its_first_epoch_has_no_claim_on_its_folder(tmp_path,
                                                                            capsys):
    """A first try that failed before an epoch finished (a bad flag found at the first step,
    say) does not lock the folder: the corrected rerun starts in its place. One finished
    epoch, a model or resume state make it a run that only --overwrite replaces."""
    folder = runs.RunFolder(tmp_path / "run")
    with folder.lock():
        folder.start(_info(crop_size=None))
        info = folder.start(_info(crop_size=64))
        assert info["crop_size"] == 64 and info["epochs_done"] == 0
        assert "stopped before its first epoch" in capsys.readouterr().out
        folder.state_dir.mkdir(parents=True, exist_ok=True)
        (folder.state_dir / "epoch-1.weights.h5").write_bytes(b"weights")
        with pytest.raises(runs.RunError, match="crop_size: 64 -> 32.*--overwrite"):
            folder.start(_info(crop_size=32))
        (folder.state_dir / "epoch-1.weights.h5").unlink()
        folder.write_info(dict(folder.read_info(), epochs_done=1))
        with pytest.raises(runs.RunError, match="crop_size: 64 -> 32"):
            folder.start(_info(crop_size=32))


def test_old_run_folders_are_refused_with_the_command_that_converts_them(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "info.json").write_text(json.dumps({"num_classes": 4, "mean": [0.5] * 3,
                                               "std": [0.25] * 3}))
    with pytest.raises(runs.RunError, match=f"keras-drn upgrade {old}"):
        runs.RunFolder(old).read_info()
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs)).save(old / "model.keras")
    before = keras.saving.load_model(old / "model.keras")
    info = runs.upgrade(old)
    assert info["format"] == runs.FORMAT and info["task"] == "segmentation"
    after = runs.load_model(old / "model.keras")
    raw = np.random.default_rng(0).uniform(0, 255, (1, 5, 7, 3)).astype("float32")
    expected = before.predict((raw / 255 - 0.5) / 0.25, verbose=0)
    np.testing.assert_allclose(after.predict(raw, verbose=0), expected, rtol=1e-4, atol=1e-4)
    assert runs.upgrade(old)["format"] == runs.FORMAT  # twice is harmless


def test_upgrade_of_a_folder_without_models_converts_nothing_and_says_so(tmp_path, capsys):
    from keras_drn.cli import app as cli

    old = tmp_path / "old"
    old.mkdir()
    text = json.dumps({"num_classes": 4, "mean": [0.5] * 3, "std": [0.25] * 3})
    (old / "info.json").write_text(text)
    with refused(capsys, f"{old} holds no model.keras or best.keras: there "
                 "is nothing to convert, and its info.json is left as it is"):
        cli.main(["upgrade", str(old)])
    assert (old / "info.json").read_text() == text  # not stamped format 2
    assert "format 2" not in capsys.readouterr().out


@pytest.mark.parametrize("content, problem", [
    ('{"num_classes": 4, "mean": [0.5, 0.5', "not readable JSON"),
    ("[1, 2]", "a JSON list, not the object of a run's info.json"),
    (b"\xff\xfe\x00garbage", "not readable JSON"),
])
def test_a_damaged_info_json_is_named_with_what_to_do(tmp_path, content, problem, capsys):
    from keras_drn.cli import app as cli

    run = tmp_path / "run"
    run.mkdir()
    path = run / "info.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)).save(run / "model.keras")
    expected = f"{path} is damaged: {problem}.*Restore it from a copy, or retrain the run"
    with refused(capsys, expected):
        cli.main(["upgrade", str(run)])
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image)
    with refused(capsys, expected):
        cli.main(["predict", str(run / "model.keras"), str(image), "--output-dir",
                  str(tmp_path / "out")])


def test_resuming_in_another_precision_is_refused_naming_the_flag(tmp_path):
    folder = runs.RunFolder(tmp_path / "run")
    with folder.lock():
        folder.write_info(dict(folder.start(_info(dtype_policy="float32")), epochs_done=2))
        before = folder.info_path.read_text()
        with pytest.raises(runs.RunError, match="trained 2 epoch\\(s\\) in float32; resuming "
                           "it in mixed_bfloat16 would mix precisions.*--mixed-precision "
                           "float32"):
            folder.start(_info(dtype_policy="mixed_bfloat16"))
        assert folder.info_path.read_text() == before  # still says float32
        assert folder.start(_info(dtype_policy="float32"))["epochs_done"] == 2
        # A complete run keeps the precision its epochs ran in; training more is refused.
        folder.finish(json.loads(folder.info_path.read_text()))
        info = folder.start(_info(dtype_policy="mixed_bfloat16"))
        assert info["dtype_policy"] == "float32"
        with pytest.raises(runs.RunError, match="--mixed-precision float32"):
            folder.check_precision(info, "mixed_bfloat16")
        folder.check_precision(info, "float32")


def test_a_new_run_refuses_files_of_a_run_that_keras_drn_did_not_write(tmp_path):
    from keras_drn.evaluation.visualize import save_png

    folder = runs.RunFolder(tmp_path / "run")
    folder.path.mkdir()
    picture = folder.path / "val_predictions.png"
    picture.write_bytes(b"the user's picture")
    with folder.lock():
        with pytest.raises(FileExistsError, match="val_predictions.png exists and was not "
                           "written by keras_drn.*another --output-dir, or pass --overwrite"):
            folder.start(_info())
        assert not folder.info_path.exists() and picture.read_bytes() == b"the user's picture"
        folder.start(_info(), overwrite=True)
        save_png(np.zeros((2, 2, 3), np.uint8), picture, overwrite=True)
        folder.info_path.unlink()
        folder.start(_info())  # keras_drn's own picture is no obstacle


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_bytes(b""), "is empty \\(0 bytes\\)"),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
     "truncated or not a .keras file"),
])
def test_a_damaged_keras_file_is_named_as_such(tmp_path, damage, message):
    inputs = keras.Input((4,))
    path = tmp_path / "model.keras"
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(path)
    damage(path)
    with pytest.raises(runs.RunError, match=message):
        runs.load_model(path)
    with pytest.raises(runs.RunError, match="does not exist"):
        runs.load_model(tmp_path / "missing.keras")


def test_a_corrupt_entry_is_named(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("config.json", "x" * 100)
    data = bytearray(path.read_bytes())
    data[data.index(b"xxxx")] = ord("y")
    path.write_bytes(bytes(data))
    with pytest.raises(runs.RunError, match="config.json.*CRC"):
        runs.check_model_file(path)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_files_get_the_umask_permissions(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic.write_json(tmp_path / "info.json", {"a": 1})
        inputs = keras.Input((4,))
        atomic.write_atomically(tmp_path / "model.keras",
                                keras.Model(inputs, keras.layers.Dense(2)(inputs)).save)
    finally:
        os.umask(previous)
    for name in ("info.json", "model.keras"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_a_read_only_folder_is_named_with_what_to_do(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match=f"{folder} is not writable.*--output-dir"):
        atomic.write_json(folder / "info.json", {})
    assert list(folder.iterdir()) == []


@keras.saving.register_keras_serializable(package="tests_runs")
class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(2, 1)
        self.bn = keras.layers.BatchNormalization()

    def call(self, x):
        return self.bn(self.conv(x))


def test_models_load_for_inference_with_batch_norm_folded(tmp_path):
    from tests.models.test_fold import (assert_same_outputs, batch_norms, raw_images,
                                        small_model)

    model = small_model()  # preprocessing, conv -> BN pairs, composite layers, random BNs
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = runs.load_for_inference(path)
    assert not batch_norms(loaded) and batch_norms(model)
    assert_same_outputs(model, loaded, raw_images())
    # The workflows' loaders (evaluate, predict) take this path.
    from keras_drn.workflows.classification import load_classifier
    from keras_drn.workflows.segmentation import load_segmenter

    assert not batch_norms(load_segmenter(path)) and not batch_norms(load_classifier(path))
    # A subclassed model cannot be rebuilt: it comes back as loaded, BN and all.
    net = _Subclassed()
    net(np.zeros((1, 4, 4, 3), "float32"))
    net.save(tmp_path / "net.keras")
    assert isinstance(runs.load_for_inference(tmp_path / "net.keras").bn,
                      keras.layers.BatchNormalization)
