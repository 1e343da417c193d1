"""Data parallel training on two virtual CPU devices. The device count must be set before the
backend starts, so each check runs in a fresh interpreter; the suite runs once per backend
and each backend's check runs in its own pass."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_drn.workflows.distribute import (
    SINGLE_PROCESS,
    Cluster,
    cluster_from_environment,
    data_parallel,
    first_host,
    initialize,
    resolve_cluster,
    synchronize_batchnorm,
)
from keras_drn.layers.dilated_residual import DilatedResidualBlock

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository
BACKEND = keras.backend.backend()

# Shared by both backends' child processes: two SGD steps (the recipe's ReferenceSGD, with
# momentum and weight decay, so the replicas' velocities count) of a small conv-BN model on a
# batch whose two halves (one per replica) have very different statistics, on one device and
# data parallel on two. On TensorFlow also without synchronized BN (which must differ), and one
# step of a DRN segmenter with synchronized BN in its residual blocks. On JAX
# synchronize_batchnorm changes nothing (so the synchronized run is the plain one), and a
# first DRN build there compiles one random initializer per kernel shape (15-20 s).
CHILD = """
import contextlib, json
import keras
import numpy as np
import keras_drn
from keras_drn.workflows.distribute import (
    SINGLE_PROCESS,
    Cluster,
    cluster_from_environment,
    data_parallel,
    first_host,
    initialize,
    resolve_cluster,
    synchronize_batchnorm,
)
from keras_drn.workflows.training import ReferenceSGD, compile_segmenter

def tiny():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1, name="classifier")(x))

rng = np.random.default_rng(0)
x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
x[:2] = 3 * x[:2] + 2
y = rng.integers(0, 3, size=(4, 6, 6))
keras.utils.set_random_seed(0)
initial = tiny().get_weights()

def one_step(parallel, sync):
    with (data_parallel() if parallel else contextlib.nullcontext()) as handle:
        model = tiny()
        model.set_weights(initial)
        if sync:
            synchronize_batchnorm(model)
        model.compile(optimizer=ReferenceSGD(0.1, momentum=0.9, weight_decay=0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        weights = [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]
        return handle, weights, loss.history["loss"][-1], model

def gap(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a, b))

_, single, single_loss, _ = one_step(False, False)
handle, synced, synced_loss, model = one_step(True, True)
result = {"synced_gap": gap(single, synced), "loss_gap": abs(single_loss - synced_loss)}
if keras.backend.backend() == "jax":
    result["replicas"] = int(np.prod(handle.device_mesh.shape))
    result["weight_devices"] = len(model.trainable_weights[0].value.sharding.device_set)
else:
    result["replicas"] = handle.num_replicas_in_sync
    _, local, _, _ = one_step(True, False)
    result["local_gap"] = gap(single, local)
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, size=(2, 32, 32))
    labels[:, :3] = 255
    with data_parallel():
        model = synchronize_batchnorm(keras_drn.DRNSegmenter("drn_d_22", num_classes=3))
        compile_segmenter(model, 3)
        history = model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    result["drn_loss"] = history.history["loss"][0]
    result["drn_finite"] = bool(all(np.all(np.isfinite(keras.ops.convert_to_numpy(w)))
                                    for w in model.weights))
print("RESULT " + json.dumps(result))
"""

TENSORFLOW_SETUP = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def _run_child(setup, env):
    env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    script = textwrap.dedent(setup) + CHILD
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def _check(result):
    assert result["replicas"] == 2
    # One data-parallel step with global batch statistics equals the single-device step.
    assert result["synced_gap"] < 1e-5 and result["loss_gap"] < 1e-5, result


@pytest.mark.skipif(BACKEND != "tensorflow", reason="MirroredStrategy: TensorFlow pass")
def test_mirrored_strategy_on_two_cpus_equals_one_device_with_synchronized_bn():
    result = _run_child(TENSORFLOW_SETUP, {"KERAS_BACKEND": "tensorflow"})
    _check(result)
    # Without synchronization each replica normalises with its own half batch: different.
    assert result["local_gap"] > 1e-3, result
    assert result["drn_finite"] and result["drn_loss"] > 0, result


@pytest.mark.skipif(BACKEND != "jax", reason="DataParallel: JAX pass")
def test_jax_data_parallel_on_two_cpus_equals_one_device():
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2")
    result = _run_child("", {"KERAS_BACKEND": "jax", "XLA_FLAGS": flags.strip()})
    # BatchNormalization sees the global batch without any synchronization.
    _check(result)
    assert result["weight_devices"] == 2, result  # replicated on both devices


def _composite_model():
    """A top-level BatchNormalization and three inside a residual block."""
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.BatchNormalization(name="bn")(inputs)
    x = DilatedResidualBlock(8, strides=2, name="block")(x)
    return keras.Model(inputs, x)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="synchronized BN exists on TensorFlow")
def test_synchronize_batchnorm_reaches_batchnorms_inside_composite_layers():
    model = _composite_model()
    model.compile(optimizer="sgd", loss="mse")
    model.train_function = object()  # stands for a compiled step, which must be dropped
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 4  # bn, block.bn1, block.bn2, block.downsample_bn
    assert synchronize_batchnorm(model) is model
    assert all(layer.synchronized for layer in norms)
    assert model.train_function is None


@pytest.mark.skipif(BACKEND != "jax", reason="JAX pass")
def test_synchronize_batchnorm_leaves_jax_models_unchanged():
    norm = keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((4, 4, 2)), norm])
    assert synchronize_batchnorm(model) is model and not norm.synchronized


@pytest.mark.skipif(BACKEND != "torch", reason="torch pass")
def test_torch_backend_says_data_parallel_is_unsupported():
    with pytest.raises(NotImplementedError, match="torch.*one device"):
        with data_parallel():
            pass
    with pytest.raises(NotImplementedError, match="synchronize_batchnorm"):
        synchronize_batchnorm(_composite_model())


# --- Several processes: where the job's description comes from, and the refusals ---------


def test_no_launcher_variables_is_a_single_process():
    assert cluster_from_environment({}) == SINGLE_PROCESS
    assert cluster_from_environment({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) == (
        SINGLE_PROCESS)
    assert resolve_cluster(environ={}) == SINGLE_PROCESS


def test_keras_distribution_variables_name_the_coordinator_and_count():
    cluster = cluster_from_environment({
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1"})
    assert cluster[:3] == ("10.0.0.1:1234", 2, 1)
    with pytest.raises(ValueError, match="lists 2 addresses but .*NUM_PROCESSES is 3"):
        cluster_from_environment({
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "3", "KERAS_DISTRIBUTION_PROCESS_ID": "0"})
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_PROCESS_ID is not set"):
        cluster_from_environment({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234",
                                  "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"})


def test_tf_config_numbers_the_chief_then_the_workers():
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
              "task": {"type": "worker", "index": 1}}
    cluster = cluster_from_environment({"TF_CONFIG": json.dumps(config)})
    assert cluster == Cluster("a:1", 3, 2, "TF_CONFIG")
    config["task"] = {"type": "ps", "index": 0}
    with pytest.raises(ValueError, match="TF_CONFIG is not a usable.*'ps'"):
        cluster_from_environment({"TF_CONFIG": json.dumps(config)})


def test_slurm_coordinator_is_the_first_node_of_the_step():
    assert first_host("node[003-007,9],gpu1") == "node003"
    assert first_host("gpu-a12,gpu-b1") == "gpu-a12"
    environ = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_JOB_ID": "4097",
               "SLURM_STEP_NODELIST": "node[07-08]", "SLURM_JOB_NODELIST": "other"}
    # JAX's own SLURM port rule: 61440 + job id mod 4096.
    assert cluster_from_environment(environ)[:3] == ("node07:61441", 4, 3)
    environ["KERAS_DRN_COORDINATOR_PORT"] = "29500"
    assert cluster_from_environment(environ).coordinator == "node07:29500"
    with pytest.raises(ValueError, match="start the processes with srun"):
        cluster_from_environment({"SLURM_NTASKS": "2"})


def test_arguments_must_be_complete_and_consistent():
    with pytest.raises(ValueError, match="missing --coordinator, --process-id"):
        resolve_cluster(num_processes=2, environ={})
    with pytest.raises(ValueError, match=r"in \[0, 1\] for 2 processes; received 2"):
        resolve_cluster("127.0.0.1:1234", 2, 2, environ={})
    with pytest.raises(ValueError, match="HOST:PORT.*'127.0.0.1'"):
        resolve_cluster("127.0.0.1", 2, 0, environ={})
    assert resolve_cluster(num_processes=1, environ={})[:3] == (None, 1, 0)
    # Arguments win over the environment.
    assert resolve_cluster("h:1", 2, 1, environ={"SLURM_NTASKS": "8"})[:3] == ("h:1", 2, 1)


def test_a_single_process_needs_no_initialization():
    assert initialize(num_processes=1) == resolve_cluster(num_processes=1)


def test_the_time_to_wait_for_the_other_processes_must_be_positive():
    with pytest.raises(ValueError, match="must be positive; received --init-timeout 0"):
        initialize("127.0.0.1:1234", 2, 0, init_timeout=0)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow pass")
def test_tensorflow_refuses_several_processes_with_the_upstream_reason():
    with pytest.raises(NotImplementedError, match="MultiWorkerMirroredStrategy.*20585.*jax"):
        initialize("127.0.0.1:1234", 2, 0)


@pytest.mark.skipif(BACKEND != "torch", reason="torch pass")
def test_torch_refuses_several_processes_naming_the_supported_backend():
    with pytest.raises(NotImplementedError, match="'torch' backend.*KERAS_BACKEND=jax"):
        initialize("127.0.0.1:1234", 2, 0)


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*"))}


def test_a_non_chief_checkpoint_resumes_from_the_folder_and_writes_nothing(tmp_path):
    from keras_drn.workflows.runs import RunCheckpoint

    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)

    def fit(epochs, chief):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        checkpoint = RunCheckpoint(tmp_path, monitor="loss", chief=chief)
        history = model.fit(x, y, epochs=epochs, verbose=0, callbacks=[checkpoint])
        return checkpoint, history

    fit(2, chief=True)
    before = _snapshot(tmp_path)
    checkpoint, history = fit(4, chief=False)
    assert checkpoint.restored_epoch == 2 and len(history.history["loss"]) == 2
    assert _snapshot(tmp_path) == before  # no best model, log row or state from it
