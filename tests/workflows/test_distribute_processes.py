"""Data parallel training in two processes on 127.0.0.1 (JAX, gloo collectives on CPU): the
same steps as one process with the same global batches, BatchNormalization statistics of the
global batch, only process 0 writing the run folder, a killed worker stopping the job, and a
rerun resuming it. Each process is a fresh interpreter (``jax.distributed`` must start before
any computation); one CPU device per process."""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository
BACKEND = keras.backend.backend()
pytestmark = pytest.mark.skipif(
    BACKEND != "jax", reason="several processes are supported on JAX only (the TensorFlow "
    "and torch refusals are tested in test_distribute.py)")

# float32 sums in another order: the two-process step all-reduces two half-batch partial sums
# (gloo), the one-process step sums the whole batch at once. Each differs from the exact sum
# by a few ulps (~1e-7 relative); three SGD steps at lr 0.1 on O(1) weights keep the gap
# far below 1e-5 (seen: ~1e-7).
TOLERANCE = 1e-5

PREAMBLE = """
import json, sys, time
import numpy as np
from keras_drn.workflows import distribute
n, pid, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if n > 1:
    distribute.initialize(f"127.0.0.1:{port}", n, pid, heartbeat_timeout=10)
import keras
import tensorflow as tf

def tiny():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    # momentum 0: the moving statistics after a step are that step's batch statistics.
    x = keras.layers.BatchNormalization(momentum=0.0, name="bn")(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1, name="classifier")(x))

def report(**values):
    print("RESULT " + json.dumps(values), flush=True)
"""

# Three global batches of 4; in each, the first half (process 0's slice: Keras rebatches to 2
# and shards) is shifted and scaled, so half-batch statistics differ from the global ones.
NUMERIC = PREAMBLE + """
rng = np.random.default_rng(0)
x = rng.normal(size=(12, 6, 6, 3)).astype("float32")
for start in range(0, 12, 4):
    x[start:start + 2] = 3 * x[start:start + 2] + 2
y = rng.integers(0, 3, size=(12, 6, 6))
keras.utils.set_random_seed(0)
with distribute.data_parallel() if n > 1 else keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()[:1]).scope():
    model = tiny()
    conv = keras.Model(model.input, model.get_layer("conv").output)
    features = np.asarray(conv.predict(x[:4], verbose=0)) if n == 1 else None
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True)
    model.fit(batches.take(1), epochs=1, verbose=0)
    bn = model.get_layer("bn")
    statistics = {"mean": np.asarray(bn.moving_mean).tolist(),
                  "variance": np.asarray(bn.moving_variance).tolist()}
    model.fit(batches.skip(1), epochs=1, verbose=0)
result = {"statistics": statistics,
          "weights": [np.asarray(w).ravel().tolist() for w in model.get_weights()]}
if features is not None:
    result["global"] = features.mean(axis=(0, 1, 2)).tolist()
    result["half"] = features[:2].mean(axis=(0, 1, 2)).tolist()
    result["global_variance"] = features.var(axis=(0, 1, 2)).tolist()
report(**result)
"""

# A run folder trained by RunCheckpoint (best model, log, resume state) through
# RunFolder.session: process 0 locks and writes, the others only read. Each epoch sleeps a
# little so that the test can kill a worker mid-run.
RUN = PREAMBLE + """
from keras_drn.workflows import runs
folder, epochs = sys.argv[4], int(sys.argv[5])
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 6, 6, 3)).astype("float32")
y = rng.integers(0, 3, size=(8, 6, 6))
keras.utils.set_random_seed(0)
run = runs.RunFolder(folder)
info = {"task": "segmentation", "data": "tiny", "processes": n}
with run.session(info) as info, distribute.data_parallel():
    model = tiny()
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    checkpoint = runs.RunCheckpoint(folder, monitor="loss")
    pause = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (
        print(f"EPOCH {epoch}", flush=True), time.sleep(0.5)))
    with distribute.peer_failures():
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=True),
                  epochs=epochs, verbose=0, callbacks=[checkpoint, pause])
report(restored=checkpoint.restored_epoch)
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(script, count, *args):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    port = str(_free_port())
    return [subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(count),
                              str(pid), port, *map(str, args)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for pid in range(count)]


def _finish(procs, timeout=240):
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
    return outputs


def _results(procs, timeout=240):
    results = []
    for proc, output in zip(procs, _finish(procs, timeout)):
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, output[-4000:]
        results.append(json.loads(lines[-1][len("RESULT "):]))
    return results


def test_two_processes_train_as_one_with_global_batch_statistics():
    one = _start(NUMERIC, 1)
    two = _start(NUMERIC, 2)
    (single,), pair = _results(one), _results(two)
    for result in pair:  # both processes hold the same weights, those of one process
        for got, want in zip(result["weights"], single["weights"]):
            np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=TOLERANCE)
    statistics = pair[0]["statistics"]
    np.testing.assert_allclose(statistics["mean"], single["global"], atol=TOLERANCE)
    np.testing.assert_allclose(statistics["variance"], single["global_variance"], rtol=1e-4)
    # Not process 0's half batch: its statistics are far from the global ones.
    assert np.abs(np.subtract(single["half"], single["global"])).max() > 100 * TOLERANCE
    assert np.abs(np.subtract(statistics["mean"], single["half"])).max() > 100 * TOLERANCE


def _wait_for_epoch(state, epoch, procs, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = (json.loads(state.read_text()).get("epoch", 0) if state.exists() else 0)
        if done >= epoch:
            return done
        assert all(proc.poll() is None for proc in procs), _finish(procs)
        time.sleep(0.1)
    raise AssertionError(f"no epoch {epoch} within {timeout} s")


def test_killed_worker_stops_the_job_and_a_rerun_resumes(tmp_path):
    folder, epochs = tmp_path / "run", 6
    procs = _start(RUN, 2, folder, epochs)
    _wait_for_epoch(folder / "state" / "state.json", 2, procs)
    procs[1].send_signal(signal.SIGKILL)
    start = time.monotonic()
    output = _finish(procs[:1], timeout=120)[0]  # not a hang: gloo fails, or the heartbeat
    assert procs[0].returncode != 0, output[-3000:]
    assert re.search(r"another process of the job failed|another task died", output), (
        output[-3000:])
    assert time.monotonic() - start < 120
    killed_at = json.loads((folder / "state" / "state.json").read_text())["epoch"]
    assert 2 <= killed_at < epochs
    lock = (folder / ".lock").read_text().strip()
    assert lock == str(procs[0].pid)  # the chief, not the worker, held the run's lock

    procs = _start(RUN, 2, folder, epochs)
    results = _results(procs)
    assert [r["restored"] for r in results] == [killed_at, killed_at]
    assert (folder / ".lock").read_text().strip() == str(procs[0].pid)
    log = (folder / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == [str(e) for e in range(epochs)]
    info = json.loads((folder / "info.json").read_text())
    assert info["processes"] == 2 and info["epochs_done"] == epochs


def _image_mask_folder(root):
    """Eight training and four validation 16x16 scenes: a bright disk (class 1) on noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(count):
            rows, cols = np.mgrid[:16, :16]
            centre, radius = rng.integers(4, 12, 2), rng.integers(2, 6)
            mask = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius**2)
            image = rng.integers(0, 80, (16, 16, 3)).astype(np.uint8)
            image[mask] += 150
            Image.fromarray(image).save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask.astype(np.uint8)).save(root / split / "masks" / f"{i}.png")
    return root


# Not slow-marked: CI's JAX phase, the only one where it runs, leaves slow tests out (about
# 50 s on two cores: two DRN-D-22 builds, 127 MB checkpoints). The default --mixed-precision
# (auto) asks the backend for its devices: train must join the job before that.
def test_keras_drn_train_in_two_processes_writes_the_run_folder_from_process_0(tmp_path):
    data = _image_mask_folder(tmp_path / "data")
    folder = tmp_path / "run"
    port = _free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    command = [sys.executable, "-m", "keras_drn.cli", "train", "--data", str(data),
               "--num-classes", "2", "--size", "16", "--crop-size", "16", "--batch-size", "4",
               "--epochs", "1", "--output-dir", str(folder), "--one-line-per-epoch",
               "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = [subprocess.Popen(command + ["--process-id", str(i)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    chief, worker = _finish(procs, timeout=900)
    assert [p.returncode for p in procs] == [0, 0], chief[-3000:] + worker[-3000:]
    info = json.loads((folder / "info.json").read_text())
    assert info["processes"] == 2 and info["status"] == "complete", info
    assert (folder / "model.keras").is_file() and (folder / "val_predictions.png").is_file()
    assert (folder / ".lock").read_text().strip() == str(procs[0].pid)
    assert "validation IoU" in chief and "wrote" in chief
    assert "validation IoU" not in worker and "wrote" not in worker


def test_a_process_whose_peers_never_come_says_whom_it_waits_for_and_gives_up(tmp_path):
    """One process of a two-process job: the chief alone (its worker never comes) and a
    worker alone (nothing listens at its coordinator). Each names the coordinator and the
    processes it waits for, then gives up after --init-timeout with the flags to fix."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    ports = [_free_port(), _free_port()]  # nothing listens at either
    procs = [subprocess.Popen(
        [sys.executable, "-m", "keras_drn.cli", "train", "--output-dir", str(tmp_path / str(i)),
         "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
         "--init-timeout", "3"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for i, port in enumerate(ports)]
    chief, worker = _finish(procs, timeout=240)  # a hang guard: JAX alone waits 300 s
    assert [p.returncode for p in procs] == [1, 1], chief[-3000:] + worker[-3000:]
    coordinator = f"127.0.0.1:{ports[0]}"
    assert f"listening on {coordinator}): waiting up to 3 s for process 1 to join" in chief
    assert (f"Process 0 of 2 gave up after 3 s: process 1 did not join at {coordinator}. Start "
            f"process 1 with --coordinator {coordinator} --num-processes 2 and its own "
            "--process-id") in chief, chief[-3000:]
    coordinator = f"127.0.0.1:{ports[1]}"
    assert (f"Process 1 of 2: joining the job of coordinator {coordinator} (process 0), waiting "
            "up to 3 s for process 0") in worker, worker[-3000:]
    assert (f"Process 1 of 2 gave up after 3 s: nothing answers at the coordinator "
            f"{coordinator}. Start process 0 (the coordinator), check --coordinator") in worker
    assert "Traceback" not in chief + worker
