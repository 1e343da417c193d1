"""The run folder: one record, owned by this module, of one training run.

``keras-drn train`` (``keras_drn.workflows.segmentation.train``, ``keras_drn.workflows.classification.train``) writes::

    RUN/info.json        what evaluate and predict need and what identifies the run (below)
    RUN/model.keras      the final model (raw 0-255 RGB in: it carries its normalisation)
    RUN/best.keras       the best epoch by the monitored score
    RUN/log.csv          one row per finished epoch
    RUN/state/           resume state: state.json + the last two epoch-NNNN.weights.h5
    RUN/tensorboard/     TensorBoard's logs, when asked (train tensorboard=True)
    RUN/.lock            held by the process that trains into RUN

Every file is written atomically (``keras_drn.atomic``): SIGKILL at any instant leaves each
file whole, old or new. ``state/state.json`` names the weights file of the last finished
epoch (model and optimizer variables) and is replaced only after that file is complete, so a
rerun resumes at the first unfinished epoch; the previous epoch's file is kept, so a damaged
latest file costs one epoch, not the run. On resume, ``log.csv`` is cut back to the epochs the
state holds.

``info.json`` records the task, the data (source, size or crop, split seed and fraction), the
classes and their names, the architecture, the normalisation the model carries, the versions,
``status`` ("training" or "complete") and ``epochs_done``. A rerun into a folder that holds a
different run (data, classes, architecture: the ``IDENTITY`` keys) is refused with the keys
that differ, unless ``overwrite=True`` (``--overwrite``) clears the folder first; a rerun of a
complete run says so and trains nothing (more ``epochs`` extends it).

A job of several processes (``keras_drn.workflows.distribute``) shares one folder: process 0 takes the
lock and writes every file; the others take no lock, write nothing and read what process 0
wrote (``RunFolder.session``, ``RunCheckpoint(chief=...)``). ``info.json`` records the
``processes`` of the latest start; the count is not an identity key (the training steps are
those of one process with the same global batch), so a run may resume with another count.
"""

import contextlib
import csv
import io
import json
import math
import os
import pathlib
import platform
import shutil

import keras
import numpy as np

from keras_drn import _keras_compat, atomic
from keras_drn.workflows.record import RECORDS

FORMAT = 2
INFO, MODEL, BEST, LOG, STATE, LOCK = (
    "info.json", "model.keras", "best.keras", "log.csv", "state", ".lock")
# What a run writes beside its models, recorded as keras_drn's (keras_drn.atomic): a new run
# refuses a folder where such a file exists that keras_drn did not write, unless --overwrite.
OUTPUTS = ("val_predictions.png", "confusion_matrix.png", "submission.csv", "oof.npz")
TENSORBOARD = "tensorboard"  # TensorBoard's logs (train tensorboard=True)
# Keys whose values identify a run: a rerun with other values is another run. The fields of
# the run record marked identity=True (keras_drn.workflows.record), and the task.
IDENTITY = {task: record.identity_keys() for task, record in RECORDS.items()}


class RunError(ValueError):
    """A run folder that cannot be used as asked (another run, in use, old or damaged)."""


def check_tensorboard(tensorboard):
    """ValueError, before anything trains, when ``tensorboard=True`` and the ``tensorboard``
    package that Keras's TensorBoard callback writes with is not installed."""
    import importlib.util

    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ValueError("tensorboard=True writes with the tensorboard package, which is not "
                         "installed: pip install 'keras-drn[tensorboard]'.")


def versions():
    """The versions a run records."""
    import keras_drn

    return {"keras_drn": keras_drn.__version__, "keras": keras.__version__,
            "backend": keras.backend.backend(), "python": platform.python_version()}


def check_model_file(path):
    """RunError naming the problem unless ``path`` is a complete ``.keras`` file
    (``keras_drn.weights.loading.check_keras_file``, with what to do in a run folder)."""
    from keras_drn.weights.loading import check_keras_file

    try:
        check_keras_file(path)
    except ValueError as error:
        raise RunError(f"{error} Use the run's best.keras, or train again.") from None


def load_model(path):
    """A ``.keras`` file, checked first (``check_model_file``), loaded with Keras's safe_mode
    on: no code from the file runs."""
    check_model_file(path)
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def load_for_inference(path):
    """``load_model``, then BatchNormalization folded into the convolutions
    (``keras_drn.fold_batch_norm``): the same predictions within float rounding, in fewer ops.
    TensorFlow on a CPU: 1.32-1.39x the classifiers' bfloat16 inference with AMX, 1.01-1.06x
    otherwise; JAX and PyTorch about 1.0x (README, "Speed"). A model whose graph is Python
    code (a subclassed model, which ``fold_batch_norm`` cannot rebuild) is returned as loaded."""
    from keras_drn.models.fold import fold_batch_norm, rebuildable

    model = load_model(path)
    return fold_batch_norm(model) if rebuildable(model) else model


def differences(old, new, task):
    """``["key: old -> new", ...]`` for the identity keys of ``task`` that differ."""
    keys = IDENTITY[task]
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys
            if _normal(old.get(key)) != _normal(new.get(key))]


def _normal(value):
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


class RunFolder:
    """A run folder (``path``): its files, its lock, its ``info.json``."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.info_path = self.path / INFO
        self.model_path = self.path / MODEL
        self.best_path = self.path / BEST
        self.log_path = self.path / LOG
        self.state_dir = self.path / STATE

    @contextlib.contextmanager
    def lock(self):
        """Holds ``RUN/.lock`` (an exclusive ``flock``) while the block runs; RunError naming
        the holder's pid when another process trains into the folder. The lock goes with the
        process, so a killed run never leaves the folder locked."""
        import fcntl

        atomic.check_writable(self.path, "run")
        descriptor = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, atomic.umask_mode())
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
                raise RunError(
                    f"{self.path} is in use by another training process (pid {holder or '?'}"
                    "): two runs cannot share a folder. Wait for it to finish, or use another "
                    "--output-dir.") from None
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
            atomic.remove_stale_temporaries(self.path)
            atomic.remove_stale_temporaries(self.state_dir)
            yield self
        finally:
            os.close(descriptor)  # releases the flock

    def read_info(self, required=True):
        """``info.json`` as a dict (``None`` when absent and not ``required``). RunError for a
        folder written by keras_drn before run folders carried ``format`` 2, with the
        command that converts it."""
        if not self.info_path.is_file():
            if not required:
                return None
            raise RunError(f"No {self.info_path}: it holds the classes and settings of the "
                           "run (keras-drn train writes it). Pass the run's model.keras, or "
                           "--info PATH.")
        info = read_json(self.info_path)
        if info.get("format") != FORMAT:
            raise RunError(
                f"{self.path} was written by an older keras_drn (its info.json has no "
                f"'format': {FORMAT}): its model expects inputs normalised outside the model. "
                f"Convert it once with: keras-drn upgrade {self.path}")
        return info

    def precision_error(self, recorded, policy, epochs):
        """The RunError of a resume in another dtype policy than the epochs done ran in."""
        return RunError(
            f"{self.path} trained {epochs} epoch(s) in {recorded}; resuming it in {policy} "
            f"would mix precisions in one run. Resume it with --mixed-precision {recorded} "
            f"(mixed_precision={recorded!r}), use another --output-dir, or --overwrite "
            "(overwrite=True) to start over.")

    def check_precision(self, info, policy):
        """RunError when the run of ``info`` (``start``'s) has epochs done in another dtype
        policy than ``policy``, the one about to train more."""
        recorded = info.get("dtype_policy")
        if info.get("epochs_done") and recorded and recorded != policy:
            raise self.precision_error(recorded, policy, info["epochs_done"])

    def write_info(self, info):
        atomic.write_json(self.info_path, info, "run")

    def start(self, info, overwrite=False):
        """Call under ``lock()``. Compares ``info`` with the folder's ``info.json``: a new
        folder gets ``info`` (``status`` "training"); a folder of a different run raises
        RunError naming what differs (``overwrite`` clears it instead); the same run keeps its
        ``epochs_done``. Returns the info now in force."""
        task = info["task"]
        existing = None
        if self.info_path.exists() or self.model_path.exists():
            try:
                existing = self.read_info()
            except RunError:
                if not overwrite:
                    raise
        if existing is not None and not overwrite:
            changed = differences(existing, info, task) if existing.get("task") == task else [
                f"task: {existing.get('task')!r} -> {task!r}"]
            if changed and self.has_nothing_to_lose(existing):
                print(f"{self.path} held a run that stopped before its first epoch finished "
                      f"({'; '.join(changed)}): starting this one in its place.")
                overwrite = True  # nothing of it to keep
            elif changed:
                raise RunError(
                    f"{self.path} holds another run ({'; '.join(changed)}). Use another "
                    "--output-dir, or --overwrite (overwrite=True) to delete it and start "
                    "over.")
            else:
                info = self._keep_precision(existing, info)
        if existing is None and not overwrite:  # files a run writes, but not this run's
            atomic.check_replaceable([self.path / name for name in OUTPUTS], False)
        if overwrite:
            self.clear()
            existing = None
        info = dict(info, format=FORMAT, versions=versions())
        info["status"] = "training"
        info["epochs_done"] = existing.get("epochs_done", 0) if existing else 0
        self.write_info(info)
        return info

    def _keep_precision(self, existing, info):
        """``info`` of the same run as ``existing``: RunError when its epochs done ran in
        another dtype policy and it is unfinished; a complete run keeps its recorded one."""
        recorded = existing.get("dtype_policy")
        if existing.get("epochs_done") and recorded and info.get("dtype_policy") not in (
                None, recorded):
            if existing.get("status") != "complete":
                raise self.precision_error(recorded, info["dtype_policy"],
                                           existing["epochs_done"])
            # Nothing of a complete run trains in this precision unless it is extended,
            # which check_precision refuses: its record keeps the one its epochs ran in.
            info = dict(info, dtype_policy=recorded)
        return info

    def has_nothing_to_lose(self, info):
        """Whether the run of ``info`` (this folder's) stopped before its first epoch finished:
        no epoch done, no model, no resume state. Such a run has no claim on the folder: a
        corrected rerun with other settings replaces it without ``--overwrite``."""
        state = self.state_dir.is_dir() and any(self.state_dir.iterdir())
        return (info.get("status") != "complete" and not info.get("epochs_done")
                and not self.model_path.exists() and not self.best_path.exists()
                and not state)

    @contextlib.contextmanager
    def session(self, info, overwrite=False):
        """``lock()`` and ``start(info, overwrite)`` for every process of a job: yields the
        info in force. The chief (process 0, or the only process) takes the lock and writes
        ``info.json``; the other processes take no lock and write nothing: they wait for the
        chief, then read its ``info.json`` (so the folder must be one they all share). All
        processes raise RunError alike when one cannot see that file or was started with
        other arguments (identity keys)."""
        from keras_drn.workflows import distribute

        if distribute.is_chief():
            with self.lock():
                info = self.start(info, overwrite=overwrite)
                distribute.barrier("keras_drn run folder started")
                self._check_processes_agree(info)
                yield info
            return
        distribute.barrier("keras_drn run folder started")
        written = self.read_info(required=False) if self.info_path.is_file() else None
        same = written is not None and not differences(written, info, info["task"])
        self._check_processes_agree(written if same else None)
        yield written

    def _check_processes_agree(self, info):
        from keras_drn.workflows import distribute

        seen = distribute.gather(info is not None)
        if not all(seen):
            missing = [i for i, ok in enumerate(seen) if not ok]
            raise RunError(
                f"Process(es) {missing} cannot read the info.json that process 0 wrote in "
                f"{self.path}, or were started with other arguments: give every process the "
                "same command and one --output-dir that all of them share (a network file "
                "system, or one machine).")

    def finish(self, info, **results):
        """Marks the run complete in ``info.json`` (after ``model.keras`` is written)."""
        info = dict(info, status="complete", **results)
        self.write_info(info)
        return info

    def clear(self):
        """Deletes the files of the run this folder holds (not other files)."""
        for name in (INFO, MODEL, BEST, LOG, "best.weights.h5") + OUTPUTS:
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        shutil.rmtree(self.path / TENSORBOARD, ignore_errors=True)


def read_json(path):
    """The JSON object of an ``info.json`` (``path``); RunError naming the file and what to do
    when it cannot be read, is not JSON, or is not an object."""
    path = pathlib.Path(path)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise RunError(f"{path} is damaged: not readable JSON ({error}). Restore it from a "
                       "copy, or retrain the run (keras-drn train ... --overwrite).") from error
    if not isinstance(info, dict):
        raise RunError(f"{path} is damaged: a JSON {type(info).__name__}, not the object of a "
                       "run's info.json. Restore it from a copy, or retrain the run "
                       "(keras-drn train ... --overwrite).")
    return info


def run_of(model_path, info_path=None):
    """``(RunFolder, info)`` of the run that ``model_path`` belongs to (``info_path`` overrides
    where its ``info.json`` is)."""
    folder = RunFolder(pathlib.Path(model_path).parent)
    if info_path is not None:
        folder.info_path = pathlib.Path(info_path)
    return folder, folder.read_info()


def task_of(model_path, info_path=None):
    """The task recorded for the run of ``model_path``, or ``None`` when no run's
    ``info.json`` is beside it."""
    path = pathlib.Path(info_path or pathlib.Path(model_path).with_name(INFO))
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None  # not a run's: read_info names the damage where a run is needed
    if "format" in info or "backbone" in info:  # a run folder, current or of keras_drn 0.1
        return info.get("task", "segmentation")
    return None  # another info.json (a dataset folder's, say)


def upgrade(path):
    """Converts a run folder written before ``format`` 2 (segmenters normalised outside the
    model) in place: its models get their normalisation as a ``preprocessing`` layer (from
    its ``info.json``) and ``info.json`` the new fields. Returns the new info."""
    from keras_drn.models.preprocessing import preprocessing_of, with_preprocessing

    folder = RunFolder(path)
    with folder.lock():
        if not folder.info_path.is_file():
            raise RunError(f"No {folder.info_path}: not a run folder.")
        info = read_json(folder.info_path)
        if info.get("format") == FORMAT:
            return info
        task = info.get("task", "segmentation")
        models = [p for p in (folder.model_path, folder.best_path) if p.exists()]
        if not models:
            raise RunError(f"{folder.path} holds no {MODEL} or {BEST}: there is nothing to "
                           "convert, and its info.json is left as it is. Upgrade the folder "
                           "that holds the run's models, or train it again with keras-drn "
                           "train.")
        loaded = [(p, load_model(p)) for p in models]  # all checked before any is rewritten
        if any(preprocessing_of(m) is None for _, m in loaded) and not all(
                isinstance(info.get(k), list) and len(info[k]) == 3 for k in ("mean", "std")):
            raise RunError(f"{folder.info_path} has no 'mean' and 'std' (three numbers each): "
                           "the normalisation its models need. Add them (the statistics the "
                           "run was trained with), then run keras-drn upgrade again.")
        for model_path, model in loaded:
            if preprocessing_of(model) is None:
                model = with_preprocessing(model, info["mean"], info["std"])
                atomic.write_atomically(model_path, model.save, "run")
        rows = _read_log(folder.log_path)
        info.update(format=FORMAT, task=task, versions=versions(), epochs_done=len(rows),
                    status="complete" if folder.model_path.exists() else "training")
        if task == "segmentation":
            info.setdefault("size", None)
            info.setdefault("crop_size", None)
            info.setdefault("seed", 0)
        folder.write_info(info)
        return info


def _read_log(path):
    if not path.exists():
        return []
    with open(path, newline="") as stream:
        return [row for row in csv.DictReader(stream)]


def _resolve_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be one of ('auto', 'min', 'max'); received mode={mode!r}.")
    if mode == "auto":
        return "min" if monitor.endswith("loss") else "max"
    return mode


class RunCheckpoint(keras.callbacks.Callback):
    """Best model, CSV log and resume state of a run folder, each written atomically.

    At the end of every epoch, in this order: ``best.keras`` (or ``best.weights.h5``) when
    ``monitor`` improved, ``log.csv`` (rewritten whole, one row per finished epoch), then the
    resume state (``state/epoch-NNNN.weights.h5``: model and optimizer variables, then
    ``state/state.json`` naming it, the best value so far and the early-stopping count). At
    the start of ``fit`` it restores the latest state that loads (falling back to the previous
    epoch's file if the latest is damaged), sets the first epoch to the one after it and cuts
    ``log.csv`` back to the finished epochs.

    Keras's ``BackupAndRestore``, ``ModelCheckpoint`` and ``CSVLogger`` write in place (a kill
    mid-write leaves a file h5py cannot open, a 0-byte best model, a torn log row) and
    ``EarlyStopping`` forgets its count on resume; so this one callback does their work.

    Args:
        work_dir: the run folder.
        monitor, mode: the logged score that decides the best model (``mode`` "auto": "min"
            for names ending in "loss", else "max").
        save_weights_only: ``best.weights.h5`` instead of ``best.keras``.
        csv_log: write ``log.csv``.
        patience: stop after this many epochs without improvement (``None``: never).
        phase: for runs that call ``fit`` several times with different trainable sets (the
            two phases of ``keras_drn.workflows.classification``): a state saved in an earlier phase is not
            restored into a later one (the weights are already in the model).
        chief: whether this process writes the folder (default: process 0 of the job,
            ``keras_drn.workflows.distribute.is_chief``). In a multi-process job every process
            restores the same state (the folder must be on a file system they share: a
            process that finds another epoch than process 0 raises RunError) and keeps the
            same best value and early-stopping count (the logs are global), but only the
            chief writes, outside the distribution (``distribute.outside_distribution``).
    """

    def __init__(self, work_dir, monitor="val_miou", mode="auto", save_weights_only=False,
                 csv_log=True, patience=None, phase=0, chief=None):
        from keras_drn.workflows import distribute

        super().__init__()
        self.chief = distribute.is_chief() if chief is None else chief
        self.folder = RunFolder(work_dir)
        self.monitor, self.mode = monitor, _resolve_mode(monitor, mode)
        self.save_weights_only, self.csv_log = save_weights_only, csv_log
        self.patience, self.phase = patience, phase
        self.best_path = self.folder.path / ("best.weights.h5" if save_weights_only else BEST)
        self.best, self.wait, self.rows, self.restored_epoch = None, 0, [], 0
        self.state = read_state(self.folder.state_dir)

    def _better(self, value):
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_train_begin(self, logs=None):
        if self.chief:
            atomic.check_writable(self.folder.state_dir, "run")
            for directory in (self.folder.path, self.folder.state_dir):  # a killed fit's
                atomic.remove_stale_temporaries(directory)                # leftovers
        self.state = read_state(self.folder.state_dir)
        epoch, start = 0, None
        same_phase = bool(self.state) and self.state.get("phase", 0) == self.phase
        if same_phase:
            epoch = start = self._restore()
            if self.state.get("stopped"):
                start = 2**31 - 1  # early stopping had ended this phase: no epoch is left
        elif self.state:  # an earlier phase: its weights are already in the model
            epoch = self.state["epoch"]
        if self.state:  # the best value spans phases, the early-stopping count does not
            self.best = self.state.get("best")
            self.wait = self.state.get("wait", 0) if same_phase else 0
        self.restored_epoch = epoch if same_phase else 0
        _check_same_state(self.folder, epoch)
        # Read by Keras's fit after on_train_begin (as BackupAndRestore does); None: fit's own.
        _keras_compat.set_initial_epoch(self.model, start or None)
        rows = _read_log(self.folder.log_path) if self.csv_log else []
        self.rows = [row for row in rows if _epoch_of(row) < epoch]
        if self.chief and self.csv_log and len(self.rows) != len(rows):
            self._write_log()

    def _restore(self):
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        candidates = [(self.state["epoch"], self.state["weights"])]
        if self.state.get("previous"):
            candidates.append(tuple(self.state["previous"]))
        errors = []
        for epoch, name in candidates:
            try:
                self.model.load_weights(self.folder.state_dir / name)
            except Exception as error:  # h5py and Keras raise several types for a bad file
                errors.append(f"{name}: {error}")
                continue
            if errors:
                print(f"keras_drn: the latest resume state could not be read ({errors[0]}); "
                      f"resuming from the previous one, after epoch {epoch}.")
            return epoch
        raise RunError(f"No resume state of {self.folder.path} can be read ({'; '.join(errors)}"
                       "). Start over with --overwrite (overwrite=True).")

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        value = logs.get(self.monitor)
        value = None if value is None else float(value)
        from keras_drn.workflows.distribute import outside_distribution

        improved = self._better(value)
        if improved:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        stop = self.patience is not None and self.wait >= self.patience
        if self.chief:
            with outside_distribution():
                if improved:
                    save = self.model.save_weights if self.save_weights_only else (
                        self.model.save)
                    atomic.write_atomically(self.best_path, save, "run")
                if self.csv_log:
                    self.rows.append({"epoch": str(epoch),
                                      **{k: _number(v) for k, v in logs.items()}})
                    self._write_log()
                self._save_state(epoch + 1, stopped=stop)
                self._record_epochs(epoch + 1)
        if stop:
            self.model.stop_training = True

    def _record_epochs(self, done):
        """``epochs_done`` in the folder's ``info.json``, when the folder is a run's."""
        try:
            info = self.folder.read_info(required=False)
        except RunError:  # another keras_drn's info.json: not ours to rewrite
            return
        if info is not None:
            self.folder.write_info(dict(info, epochs_done=done))

    def _write_log(self):
        keys = list(dict.fromkeys(k for row in self.rows for k in row)) or ["epoch"]
        text = io.StringIO()
        writer = csv.DictWriter(text, keys, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic.write_text(self.folder.log_path, text.getvalue(), "run")

    def _save_state(self, epoch, stopped=False):
        directory = self.folder.state_dir
        name = f"epoch-{epoch:04d}.weights.h5"
        atomic.write_atomically(directory / name, self.model.save_weights, "run")
        previous = None
        if self.state and self.state.get("phase", 0) == self.phase and (
                self.state["weights"] != name):
            previous = [self.state["epoch"], self.state["weights"]]
        self.state = {"epoch": epoch, "weights": name, "previous": previous,
                      "phase": self.phase, "best": self.best, "wait": self.wait,
                      "stopped": stopped, "monitor": self.monitor}
        atomic.write_json(directory / "state.json", self.state, "run")
        keep = {name} | ({previous[1]} if previous else set())
        for old in directory.glob("epoch-*.weights.h5"):
            if old.name not in keep:
                with contextlib.suppress(OSError):
                    old.unlink()


def _check_same_state(folder, epoch):
    """RunError unless every process of the job restored the epoch process 0 restored."""
    from keras_drn.workflows import distribute

    epochs = distribute.gather(epoch)
    if len(set(epochs)) > 1:
        raise RunError(
            f"The processes found different resume states in {folder.path} (epoch per "
            f"process: {epochs}): the run folder must be one folder that all processes "
            "share (a network file system, or one machine), given as the same --output-dir.")


def read_state(state_dir):
    """The ``state.json`` of a run's resume state, or ``None``."""
    path = pathlib.Path(state_dir) / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _epoch_of(row):
    try:
        return int(row.get("epoch", ""))
    except ValueError:
        return math.inf


def _number(value):
    value = np.asarray(value).item() if hasattr(value, "shape") else value
    return repr(float(value)) if isinstance(value, (int, float)) else str(value)
