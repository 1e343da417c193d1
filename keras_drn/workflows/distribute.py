"""Multi-device data parallel training on the engines Keras already has.

The reference trains DRN-D-105 on several GPUs with ``torch.nn.DataParallel`` and
synchronized BatchNorm (``segment.py --bn-sync``; Yu et al. 2017). In Keras 3:

- TensorFlow: ``tf.distribute.MirroredStrategy``; each replica gets ``batch / replicas``
  images and gradients are summed across replicas. BatchNormalization uses each replica's
  own batch statistics unless synchronized (``synchronize_batchnorm``). Each replica
  averages the loss over its own labelled pixels, so with ignore labels the step differs
  slightly from the reference, which gathers the outputs and averages over the whole batch.
- JAX: ``keras.distribution.DataParallel``; arrays are global and sharded over the batch
  axis, so the batch statistics of BatchNormalization and the loss's average are over the
  whole batch, as in the reference. The global batch must divide by the device count.
- torch: not supported. Keras 3's ``fit`` has no multi-device mode on the torch backend
  (Keras's guide wraps a custom loop in ``DistributedDataParallel`` under ``torchrun``);
  train on one device, or use the TensorFlow or JAX backend for several.

Several processes (one or more machines): ``initialize`` joins this process to the job
(arguments, or the launcher's environment: KERAS_DISTRIBUTION_*, TF_CONFIG, SLURM), then
``data_parallel()`` spans every process's devices.

- JAX: supported (``jax.distributed``; gloo collectives on CPU). Each process reads its
  slice of every global batch of a ``tf.data`` input; statistics of BatchNormalization and
  the loss are over the global batch. Only process 0 (``is_chief``) should write files.
- TensorFlow: not supported. Checked with Keras 3.15.1 and TensorFlow 2.21, two processes
  on 127.0.0.1 with ``TF_CONFIG``: ``MultiWorkerMirroredStrategy`` starts (2 replicas in
  sync), but ``fit`` fails before its first step in Keras's ``_maybe_symbolic_build``
  (``strategy.reduce("MEAN", first_batch)``: "Attempt to convert a value (PerReplica:...)
  ... to a Tensor"), the failure of keras-team/keras issue 20585 (open).
- torch: not supported (no Keras distribution on that backend).

Build, compile and fit the model inside the ``with`` block::

    with data_parallel() as strategy:
        model = synchronize_batchnorm(keras_drn.DRNSegmenter("drn_d_105", 19))
        compile_segmenter(model, 19)
        model.fit(train, epochs=500)  # batch size = the global batch (reference: 16)
"""

import collections
import contextlib
import json
import os
import re
import threading

import keras

from keras_drn import _keras_compat
from keras_drn.constants import HEARTBEAT_TIMEOUT, INIT_TIMEOUT, SHUTDOWN_TIMEOUT  # noqa: F401

SUPPORTED_BACKENDS = ("tensorflow", "jax")
# One MirroredStrategy per device set and process. A second strategy over the same devices
# numbers its collective ops from the same keys, and TensorFlow's collective runtime
# (2.21) remembers the first one's shapes: "Shape mismatch in the collective instance
# 100 ..." as soon as the two run different all-reduces (say with and without synchronized
# BatchNormalization).
_MIRRORED = {}


def _unsupported(what):
    return NotImplementedError(
        f"{what} is not supported on the {keras.backend.backend()!r} backend: Keras's fit "
        f"has no multi-device mode there (torchrun / DistributedDataParallel around fit is "
        f"not supported). Train on one device, or set KERAS_BACKEND to one of "
        f"{SUPPORTED_BACKENDS}."
    )


def _tensorflow_devices():
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


@contextlib.contextmanager
def data_parallel(devices=None):
    """Context in which models are built, compiled and trained data parallel.

    Args:
        devices: device names (TensorFlow: ``"/gpu:0"``, ``"/cpu:1"``; JAX: ``"gpu:0"``,
            ``"cpu:1"``), default all GPUs, or all (logical) CPUs when there is none; on
            JAX after ``initialize``, those of every process of the job.

    On TensorFlow leave ``jit_compile`` at ``"auto"`` (Keras turns XLA off under a
    ``tf.distribute`` strategy) or False: ``jit_compile=True`` fails under MirroredStrategy
    ("Trying to access resource ... located in device ...", seen on two CPUs).

    Yields:
        TensorFlow: the ``tf.distribute.MirroredStrategy`` (``num_replicas_in_sync``);
        JAX: the ``keras.distribution.DataParallel`` (``device_mesh.shape``).

    Raises:
        NotImplementedError: on the torch backend.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tuple(devices or _tensorflow_devices())
        if devices not in _MIRRORED:
            _MIRRORED[devices] = tf.distribute.MirroredStrategy(list(devices))
        with _MIRRORED[devices].scope():
            yield _MIRRORED[devices]
    elif backend == "jax":
        distribution = keras.distribution.DataParallel(devices=devices)
        with distribution.scope():
            yield distribution
    else:
        raise _unsupported("data_parallel")


def _batchnorm_layers(model):
    # Including those inside composite layers (DilatedResidualBlock, AdaptiveBlurPool), which
    # no public Keras API reaches.
    return [
        layer
        for layer in _keras_compat.sublayers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def synchronize_batchnorm(model):
    """Makes every BatchNormalization of ``model`` use statistics over the global batch.

    TensorFlow: sets ``synchronized=True`` on every BatchNormalization layer, top-level or
    inside composite layers such as ``DilatedResidualBlock``, in place (Keras 3's argument:
    mean and variance all-reduced over the replicas of the ``tf.distribute`` strategy at
    each training step; identical to ``False`` outside a strategy). A model-level
    ``clone_model`` with a ``clone_function`` would miss the sublayers of composite layers.
    Call it before ``compile`` (or compile again): compiled train steps are discarded.

    JAX: returns the model unchanged; under ``keras.distribution.DataParallel`` batch
    statistics are computed over the global (sharded) batch already.

    Saving: a saved ``.keras`` file records ``synchronized=True`` for the top-level
    BatchNormalization layers, and Keras refuses that argument on other backends: load it
    on TensorFlow, or save weights (``.weights.h5``), which load anywhere.

    Returns:
        ``model``.

    Raises:
        NotImplementedError: on the torch backend.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return model
    if backend != "tensorflow":
        raise _unsupported("synchronize_batchnorm")
    for layer in _batchnorm_layers(model):
        layer.synchronized = True
    model.train_function = model.test_function = model.predict_function = None
    return model


# --- More than one process (one or more per machine) ---------------------------------------

Cluster = collections.namedtuple("Cluster", "coordinator num_processes process_id source")
Cluster.__doc__ = """The processes of one data-parallel job: ``coordinator`` ("HOST:PORT" of
process 0, ``None`` for a single process), ``num_processes``, this ``process_id`` (0 is the
chief, which writes the run folder) and the ``source`` the values came from."""

SINGLE_PROCESS = Cluster(None, 1, 0, "a single process")
# HEARTBEAT_TIMEOUT, SHUTDOWN_TIMEOUT, INIT_TIMEOUT: keras_drn.constants, which says what each is.
PORT_VARIABLE = "KERAS_DRN_COORDINATOR_PORT"
_STARTED = {}  # the Cluster this process joined


def _slurm_port(environ):
    """``KERAS_DRN_COORDINATOR_PORT``, else JAX's own rule for SLURM jobs: a port in
    61440-65535 derived from ``SLURM_JOB_ID``, so two jobs on one node differ."""
    if environ.get(PORT_VARIABLE):
        return environ[PORT_VARIABLE]
    return str(int(environ.get("SLURM_JOB_ID", "0") or 0) % 2**12 + 65535 - 2**12 + 1)


def first_host(nodelist):
    """The first host of a SLURM node list: ``"node[003-007,9],gpu1"`` -> ``"node003"``."""
    match = re.match(r"([^,\[]*)(?:\[([^,\-\]]*))?", nodelist.strip())
    return match.group(1) + (match.group(2) or "")


def _int(value, what):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer; received {value!r}.") from None


def _check(cluster):
    what = f"(from {cluster.source})"
    if cluster.num_processes < 1:
        raise ValueError(f"The number of processes must be at least 1; received "
                         f"{cluster.num_processes} {what}.")
    if not 0 <= cluster.process_id < cluster.num_processes:
        raise ValueError(f"The process id must be in [0, {cluster.num_processes - 1}] for "
                         f"{cluster.num_processes} processes; received {cluster.process_id} "
                         f"{what}. Number the processes 0, 1, ..., N-1 (0 is the chief).")
    if cluster.num_processes > 1:
        host, _, port = (cluster.coordinator or "").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"The coordinator must be HOST:PORT (process 0's host and a free "
                             f"port, e.g. 10.0.0.1:12355); received {cluster.coordinator!r} "
                             f"{what}.")
    return cluster


def cluster_from_environment(environ=None):
    """The job a launcher describes in the environment, or ``SINGLE_PROCESS``.

    Read in this order, the first that is set wins:

    1. ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator "HOST:PORT", or all processes'
       addresses comma-separated, the first being the coordinator),
       ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``: the names
       of ``keras.distribution.initialize``.
    2. ``TF_CONFIG`` (``{"cluster": {"chief": [...], "worker": [...]}, "task": {"type": ...,
       "index": ...}}``): the chief, then the workers, are processes 0, 1, ...; the first
       address is the coordinator.
    3. SLURM (``srun``): ``SLURM_NTASKS`` > 1 processes, this one ``SLURM_PROCID``; the
       coordinator is the first host of ``SLURM_STEP_NODELIST`` (else ``SLURM_JOB_NODELIST``)
       at port ``KERAS_DRN_COORDINATOR_PORT``, default JAX's rule for SLURM (61440 +
       ``SLURM_JOB_ID`` mod 4096).

    Raises:
        ValueError: naming the variable whose value is missing or inconsistent.
    """
    environ = os.environ if environ is None else environ
    keys = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
            "KERAS_DISTRIBUTION_PROCESS_ID")
    if any(environ.get(key) for key in keys):
        addresses = [a.strip() for a in environ.get(keys[0], "").split(",") if a.strip()]
        if not environ.get(keys[2]):
            given = ", ".join(key for key in keys if environ.get(key))
            raise ValueError(f"{keys[2]} is not set, but {given} is: set it to this "
                             "process's number (0 for the chief).")
        count = _int(environ.get(keys[1]) or len(addresses), keys[1])
        if len(addresses) > 1 and count != len(addresses):
            raise ValueError(f"{keys[0]} lists {len(addresses)} addresses but {keys[1]} is "
                             f"{count}: give one address per process, or only the "
                             "coordinator's.")
        return _check(Cluster(addresses[0] if addresses else None, count,
                              _int(environ[keys[2]], keys[2]), "KERAS_DISTRIBUTION_*"))
    if environ.get("TF_CONFIG"):
        try:
            config = json.loads(environ["TF_CONFIG"])
            cluster, task = config["cluster"], config["task"]
            addresses = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
            offset = 0 if task["type"] == "chief" else len(cluster.get("chief", []))
            if task["type"] not in ("chief", "worker"):
                raise ValueError(f"task type {task['type']!r} (only 'chief' and 'worker' "
                                 "train)")
            process_id = offset + _int(task["index"], "TF_CONFIG task index")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"TF_CONFIG is not a usable cluster description ({error}); "
                             'expected {"cluster": {"worker": ["host:port", ...]}, "task": '
                             '{"type": "worker", "index": i}}.') from None
        return _check(Cluster(addresses[0] if addresses else None, len(addresses),
                              process_id, "TF_CONFIG"))
    if _int(environ.get("SLURM_NTASKS") or 1, "SLURM_NTASKS") > 1:
        nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
        if not nodelist or "SLURM_PROCID" not in environ:
            raise ValueError("SLURM_NTASKS > 1 but SLURM_PROCID or SLURM_STEP_NODELIST / "
                             "SLURM_JOB_NODELIST is not set: start the processes with srun.")
        return _check(Cluster(f"{first_host(nodelist)}:{_slurm_port(environ)}",
                              _int(environ["SLURM_NTASKS"], "SLURM_NTASKS"),
                              _int(environ["SLURM_PROCID"], "SLURM_PROCID"), "SLURM"))
    return SINGLE_PROCESS


def resolve_cluster(coordinator=None, num_processes=None, process_id=None, environ=None):
    """The job of ``initialize``'s arguments (all of them, or none: then the environment's,
    ``cluster_from_environment``). ValueError naming what is missing or out of range."""
    given = {"coordinator": coordinator, "num_processes": num_processes,
             "process_id": process_id}
    if all(value is None for value in given.values()):
        return cluster_from_environment(environ)
    count = _int(1 if num_processes is None else num_processes, "num_processes")
    if count > 1 or num_processes is None:
        missing = [f"--{key.replace('_', '-')}" for key, value in given.items() if value is None]
        if missing:
            raise ValueError(f"A job of several processes needs the coordinator, the number "
                             f"of processes and this process's id; missing {', '.join(missing)}"
                             f" ({', '.join(f'{k}={v!r}' for k, v in given.items())}).")
    return _check(Cluster(coordinator, count, _int(process_id or 0, "process_id"),
                          "the arguments"))


def initialize(coordinator=None, num_processes=None, process_id=None,
               heartbeat_timeout=HEARTBEAT_TIMEOUT, init_timeout=INIT_TIMEOUT):
    """Joins this process to a multi-process data-parallel job; call it first, before any
    model is built (JAX refuses once it has computed anything).

    One call per process, the same ``coordinator`` and ``num_processes`` everywhere, each
    its own ``process_id`` (0: the chief). With no arguments the launcher's environment is
    read (``cluster_from_environment``: KERAS_DISTRIBUTION_*, TF_CONFIG, SLURM); with none
    set it is a single process and nothing happens.

    JAX: ``jax.distributed.initialize`` (what ``keras.distribution.initialize`` calls, here
    with the heartbeat and shutdown timeouts, which Keras's does not pass); CPU collectives
    go through gloo (JAX 0.10's default), so processes on one machine, 127.0.0.1, work too.
    Then ``data_parallel()`` spans every process's devices, ``fit`` on a ``tf.data``
    dataset of global batches gives each process its share (Keras's
    ``DataParallel.distribute_dataset``: ``rebatch(batch / N)`` then ``shard(N, i)``, so
    process ``i`` reads the ``i``-th slice of every global batch) and BatchNormalization's
    statistics and the loss's mean are over the global batch. Every process must build the
    same pipeline (same seed) and call ``fit`` alike.

    TensorFlow: not supported (``_tensorflow_multi_worker_error``). torch: not supported.

    Args:
        coordinator: "HOST:PORT" of process 0 (it listens there).
        num_processes: processes of the job.
        process_id: this process, in ``[0, num_processes)``.
        heartbeat_timeout: seconds after which a silent process counts as dead and the
            others abort (a process that dies mid-step fails its peers' next collective at
            once).
        init_timeout: seconds to wait for every process to join. The process prints whom
            it waits for (the coordinator's address, the process ids) first; when the time
            is up it prints what is missing and how to fix it, and exits with status 1
            (``os._exit``: JAX's join cannot be interrupted; it would abort the process a
            little later).

    Returns:
        The ``Cluster`` joined.

    Raises:
        ValueError: inconsistent or missing values; RuntimeError: this process already
            joined another job, or JAX already computed something; NotImplementedError:
            several processes on the TensorFlow or torch backend.
    """
    cluster = resolve_cluster(coordinator, num_processes, process_id)
    if cluster.num_processes == 1:
        return cluster
    if init_timeout <= 0:
        raise ValueError(f"The time to wait for the processes to join must be positive; "
                         f"received --init-timeout {init_timeout}.")
    started = _STARTED.get("cluster")
    if started is not None:
        if started[:3] != cluster[:3]:
            raise RuntimeError(f"This process already joined the job {started[:3]}; it "
                               f"cannot join {cluster[:3]} too (one job per process).")
        return started
    backend = keras.backend.backend()
    if backend == "tensorflow":
        raise _tensorflow_multi_worker_error()
    if backend != "jax":
        raise NotImplementedError(
            f"Training in several processes is not supported on the {backend!r} backend: "
            "Keras 3 has no distribution there. Use KERAS_BACKEND=jax (supported: several "
            "processes on one or more machines) or train in one process.")
    import jax

    print(_waiting_line(cluster, init_timeout), flush=True)
    watchdog = threading.Timer(init_timeout, _give_up, (cluster, init_timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        # JAX's own limit is a backstop: the watchdog speaks first, then ends the process.
        jax.distributed.initialize(
            cluster.coordinator, cluster.num_processes, cluster.process_id,
            initialization_timeout=int(init_timeout) + _JAX_TIMEOUT_MARGIN,
            heartbeat_timeout_seconds=int(heartbeat_timeout),
            shutdown_timeout_seconds=SHUTDOWN_TIMEOUT)
    except RuntimeError as error:
        raise RuntimeError(f"{error} Call keras_drn.workflows.distribute.initialize before building "
                           "any model, running any JAX computation or asking for the devices "
                           "(keras_drn.workflows.precision's 'auto' does).") from error
    finally:
        watchdog.cancel()
    # What keras.distribution.initialize does next: one random seed for all processes when
    # none is set, so their initial weights agree (private in Keras 3.15, no public name).
    _keras_compat.initialize_jax_rng()
    _STARTED["cluster"] = cluster
    return cluster


_JAX_TIMEOUT_MARGIN = 60  # seconds JAX's own join limit leaves the watchdog


def _others(cluster):
    """"process 1", "processes 0, 2": every process of the job but this one."""
    ids = [i for i in range(cluster.num_processes) if i != cluster.process_id]
    if len(ids) == 1:
        return f"process {ids[0]}"
    return "processes " + (", ".join(map(str, ids)) if len(ids) <= 8 else f"{ids[0]}-{ids[-1]}")


def _waiting_line(cluster, timeout):
    me = f"Process {cluster.process_id} of {cluster.num_processes}"
    if cluster.process_id == 0:
        return (f"{me} (the coordinator, listening on {cluster.coordinator}): waiting up to "
                f"{timeout} s for {_others(cluster)} to join.")
    return (f"{me}: joining the job of coordinator {cluster.coordinator} (process 0), waiting "
            f"up to {timeout} s for {_others(cluster)}.")


def _answers(address, timeout=2.0):
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _sentence(text):
    return text[:1].upper() + text[1:]


def _gave_up_message(cluster, timeout, coordinator_answers):
    me = f"Process {cluster.process_id} of {cluster.num_processes}"
    n, address, others = cluster.num_processes, cluster.coordinator, _others(cluster)
    flags = cluster.source == "the arguments"
    if flags:
        start = (f"start {{}} with --coordinator {address} --num-processes {n} and "
                 f"{{}} --process-id")
        longer = "or wait longer with --init-timeout"
    else:  # a launcher's environment, not flags, describes the job
        start = f"start {{}} as {cluster.source} describes this job"
        longer = "or wait longer (init_timeout)"
    if cluster.process_id == 0:
        return (f"{me} gave up after {timeout} s: {others} did not join at {address}. "
                f"{_sentence(start.format(others, 'its own'))} (from another machine: "
                f"check that this host's port is reachable), {longer}.")
    if not coordinator_answers:
        check = ("check --coordinator (process 0's HOST:PORT)" if flags
                 else f"check the coordinator address of {cluster.source}")
        return (f"{me} gave up after {timeout} s: nothing answers at the coordinator "
                f"{address}. Start process 0 (the coordinator), {check}, {longer}.")
    return (f"{me} gave up after {timeout} s: the coordinator {address} answers but not every "
            f"process joined. {_sentence(start.format(f'all {n} processes', 'each its own'))}"
            f" (0 to {n - 1}), {longer}.")


def _give_up(cluster, timeout):
    """The watchdog of ``initialize``: JAX's join blocks in C++ and then aborts the process
    with "another task died"; this says what is missing and exits with status 1 first."""
    import sys

    answers = cluster.process_id != 0 and _answers(cluster.coordinator)
    sys.stdout.flush()
    print(_gave_up_message(cluster, timeout, answers), file=sys.stderr, flush=True)
    os._exit(1)


def _tensorflow_multi_worker_error():
    return NotImplementedError(
        "Training in several processes is not supported on the TensorFlow backend: Keras "
        f"{keras.__version__}'s fit fails under tf.distribute.MultiWorkerMirroredStrategy "
        "before the first step (keras/src/backend/tensorflow/trainer.py, "
        "_maybe_symbolic_build: strategy.reduce('MEAN', <first batch>) raises 'ValueError: "
        "Attempt to convert a value (PerReplica:...) with an unsupported type ... to a "
        "Tensor'; upstream: github.com/keras-team/keras/issues/20585, open). Use "
        "KERAS_BACKEND=jax for several processes (the same command and options), or "
        "data_parallel() for several devices of one process.")


def joined_cluster():
    """The ``Cluster`` this process joined with ``initialize``, or ``SINGLE_PROCESS``."""
    return _STARTED.get("cluster", SINGLE_PROCESS)


def is_chief():
    """Whether this process is process 0 (or the only one): the one that writes files."""
    return joined_cluster().process_id == 0


def _multihost():
    from jax.experimental import multihost_utils

    return multihost_utils


def barrier(name):
    """Waits until every process of the job reaches the barrier ``name`` (no-op alone)."""
    if joined_cluster().num_processes > 1:
        _multihost().sync_global_devices(name)


def broadcast(value):
    """Process 0's integer ``value``, in every process (``value`` itself alone)."""
    if joined_cluster().num_processes == 1:
        return int(value)
    import numpy as np

    return int(_multihost().broadcast_one_to_all(np.int32(value)))


def gather(value):
    """Every process's integer ``value``, as a list by process id (``[value]`` alone)."""
    if joined_cluster().num_processes == 1:
        return [int(value)]
    import numpy as np

    gathered = _multihost().process_allgather(np.asarray([value], np.int32), tiled=True)
    return [int(v) for v in np.asarray(gathered).ravel()]


@contextlib.contextmanager
def outside_distribution():
    """No Keras distribution while the block runs, restored after it. The chief saves
    models in it: Keras's ``save`` creates a variable (its optimizer check), which under
    ``DataParallel`` over several processes is a collective (``jax.device_put`` checks that
    every process holds the same value) and would wait forever for the others."""
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


# What a collective of a job whose peer died raises: gloo's "Connection closed by peer"
# (seen with SIGKILL), or the coordination service's missed heartbeat.
_PEER_FAILURE = re.compile(r"Gloo|closed by peer|heartbeat|coordination service|"
                           r"DEADLINE_EXCEEDED|UNAVAILABLE", re.IGNORECASE)


@contextlib.contextmanager
def peer_failures():
    """Turns the error a collective raises when another process of the job died into a
    RuntimeError that says so and how to resume. (JAX's coordination service also aborts
    the process once the dead one misses ``heartbeat_timeout`` seconds of heartbeats.)"""
    try:
        yield
    except Exception as error:
        cluster = joined_cluster()
        if cluster.num_processes == 1 or not _PEER_FAILURE.search(str(error)):
            raise
        first = str(error).strip().splitlines()[0][:300]
        raise RuntimeError(
            f"Process {cluster.process_id} of {cluster.num_processes}: another process of the "
            f"job failed or was killed ({type(error).__name__}: {first}); this one stops too. "
            "Rerun every process with the same command: training resumes after the last "
            "finished epoch of the run folder.") from error
