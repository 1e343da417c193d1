"""K-fold cross-validation of a segmenter, as Kaggle segmentation write-ups train: seeded
splits (stratified by empty / non-empty mask, or grouped by a key such as a patient id),
out-of-fold probabilities, the threshold (and minimum component size) that maximise the
competition's mean per-image Dice on them, and the fold ensemble's mean probability.

``keras-drn train --folds K --fold I`` (``keras_drn.workflows.segmentation.train(..., folds=K, fold=I)``)
trains on every fold but ``I`` of the training data and validates on fold ``I``; at the end
it writes ``RUN/oof.npz`` (``write_oof``): the held-out ids, their float16 probabilities at
mask resolution (flip TTA) and their masks. ``--fold all`` trains ``OUTPUT_DIR/fold-0`` ..
``fold-{K-1}`` and writes ``OUTPUT_DIR/threshold.json`` (``tune``), which ``keras-drn
ensemble`` uses by default.
"""

import dataclasses
import json
import pathlib
import zipfile

import numpy as np

from keras_drn import atomic
from keras_drn.constants import IGNORE_LABEL

OOF = "oof.npz"
THRESHOLD = "threshold.json"
STRATIFY = ("empty",)
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95


def fold_dir(output_dir, fold):
    """``OUTPUT_DIR/fold-I``: where ``--fold all`` trains fold ``I``."""
    return pathlib.Path(output_dir) / f"fold-{fold}"


def check_folds(folds, fold, stratify=None, group_by=None):
    """ValueError naming the problem unless ``folds`` >= 2 and ``fold`` in ``[0, folds)``
    (``fold="all"`` allowed), or ``folds`` is None with no fold options."""
    if folds is None:
        given = [name for name, value in (("fold", fold), ("stratify", stratify),
                                          ("group_by", group_by)) if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} given without folds: pass folds=K "
                             "(--folds K) to train a k-fold split.")
        return
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2 (the K of k-fold); received {folds!r}.")
    if fold != "all" and (isinstance(fold, bool) or not isinstance(fold, int)
                          or not 0 <= fold < folds):
        raise ValueError(f"fold must be an int in [0, {folds}) (the held-out fold of "
                         f"folds={folds}) or 'all'; received {fold!r}.")
    if stratify is not None and stratify not in STRATIFY:
        raise ValueError(f"stratify must be None or one of {STRATIFY}; received {stratify!r}.")


def assign_folds(count, folds, seed=0, strata=None, groups=None):
    """The fold (0 .. ``folds - 1``) of each of ``count`` examples: int64 ``(count,)``.

    The units (examples, or with ``groups`` each group's examples, never split) are shuffled
    by ``seed``, larger groups first, and each goes to the fold holding fewest examples of its
    stratum (``strata``: one hashable per example; a group's is its most common), ties to the
    fold with fewest examples, then to the lowest fold. Without groups, folds differ in size
    by at most one example per stratum.
    """
    if count < folds:
        raise ValueError(f"{count} examples cannot make {folds} folds.")
    for name, values in (("strata", strata), ("groups", groups)):
        if values is not None and len(values) != count:
            raise ValueError(f"{name} has {len(values)} values for {count} examples.")
    keys = list(range(count)) if groups is None else list(groups)
    members = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    units = list(members.values())
    if len(units) < folds:
        raise ValueError(f"{len(units)} groups cannot make {folds} folds: group by a finer "
                         "key, or use fewer folds.")
    labels = [0] * count if strata is None else list(strata)
    names = sorted(set(labels), key=str)
    stratum_of = []
    for unit in units:
        found = [names.index(labels[i]) for i in unit]
        stratum_of.append(max(set(found), key=lambda s: (found.count(s), -s)))
    rng = np.random.default_rng(np.random.SeedSequence((seed, folds, count)))
    order = rng.permutation(len(units))
    order = sorted(order, key=lambda u: -len(units[u]))  # stable: shuffled within a size
    per_stratum = np.zeros((len(names), folds), np.int64)
    totals = np.zeros(folds, np.int64)
    assignment = np.empty(count, np.int64)
    for unit in order:
        stratum = stratum_of[unit]
        fold = int(np.lexsort((np.arange(folds), totals, per_stratum[stratum]))[0])
        assignment[units[unit]] = fold
        per_stratum[stratum, fold] += len(units[unit])
        totals[fold] += len(units[unit])
    return assignment


def example_ids(data):
    """The ids of ``data``'s examples: its ``examples["id"]``, else their indices as text."""
    if data.examples is not None:
        return tuple(data.examples["id"])
    return tuple(str(i) for i in range(data.size))


def empty_masks(data):
    """Whether each example's mask has no object pixel (no class > 0 but the ignore label):
    the source's ``examples["empty"]`` when it knows, else read from the masks (one pass)."""
    if data.examples is not None and "empty" in data.examples:
        return tuple(bool(v) for v in data.examples["empty"])
    import tensorflow as tf

    flags = data.dataset.map(
        lambda image, mask: tf.logical_not(tf.reduce_any((mask > 0) & (mask != IGNORE_LABEL))))
    return tuple(bool(v) for v in flags.as_numpy_iterator())


def subset(data, indices, name):
    """``data`` reduced to the examples at ``indices`` (kept in the source's order). The
    dropped examples are still read by the source and skipped (``tf.data`` filters after the
    source decodes)."""
    import tensorflow as tf

    indices = np.sort(np.asarray(indices, np.int64))
    keep = np.zeros(data.size, bool)
    keep[indices] = True
    table = tf.constant(keep)
    dataset = data.dataset.enumerate().filter(lambda i, example: tf.gather(table, i)).map(
        lambda i, example: example).apply(tf.data.experimental.assert_cardinality(len(indices)))
    examples = data.examples or {"id": example_ids(data)}
    examples = {key: tuple(values[i] for i in indices) for key, values in examples.items()}
    return dataclasses.replace(data, dataset=dataset, size=len(indices), name=name,
                               examples=examples)


def split(data, folds, fold, seed=0, stratify=None, group_by=None):
    """``(train, val)``: ``data`` without fold ``fold``, and fold ``fold`` (``assign_folds``
    with ``seed``), each a ``SegmentationData``.

    Args:
        stratify: ``"empty"``: every fold gets its share of empty and non-empty masks.
        group_by: a column of the source's ``examples`` (a CSV source's column, or ``"id"``):
            examples with the same value share a fold.
    """
    check_folds(folds, fold, stratify, group_by)
    strata = empty_masks(data) if stratify == "empty" else None
    groups = None
    if group_by is not None:
        examples = data.examples or {"id": example_ids(data)}
        columns = sorted(k for k in examples if k != "empty")
        if group_by not in columns:
            raise ValueError(
                f"{data.name} has no column {group_by!r} to group folds by; its columns: "
                f"{columns} (per-example columns come from a CSV source, such as a Kaggle "
                "folder rle:FOLDER).")
        groups = examples[group_by]
    assignment = assign_folds(data.size, folds, seed=seed, strata=strata, groups=groups)
    held_out = np.flatnonzero(assignment == fold)
    kept = np.flatnonzero(assignment != fold)
    return (subset(data, kept, f"{data.name} (fold {fold} of {folds} held out)"),
            subset(data, held_out, f"{data.name} (fold {fold} of {folds})"))


def ensemble_probabilities(models, image, scales=(1.0,), flip=True):
    """The mean over ``models`` of their probabilities for one image ``(H, W, 3)`` (as the
    models take it: raw 0-255 for keras_drn's workflow models).

    Each member's are those of ``keras_drn.evaluation.multi_scale_predict`` over ``scales``
    (and the flipped image with ``flip``): for a binary model the mean object probability,
    float32 ``(H, W)``; otherwise the softmax of its mean log-probabilities ``(H, W,
    classes)``. Members must agree on the number of classes.
    """
    from keras_drn.evaluation import multi_scale_predict

    total, views = None, len(scales) * (2 if flip else 1)
    for model in models:
        scores = multi_scale_predict(model, image, scales=scales, flip=flip,
                                     return_scores=True)
        if scores.shape[-1] == 1:
            probabilities = scores[..., 0]
        else:
            logits = scores / views
            logits = logits - logits.max(axis=-1, keepdims=True)
            probabilities = np.exp(logits)
            probabilities /= probabilities.sum(axis=-1, keepdims=True)
        if total is not None and total.shape != probabilities.shape:
            raise ValueError(f"Ensemble members disagree: probabilities of shape "
                             f"{total.shape} and {probabilities.shape}.")
        total = probabilities if total is None else total + probabilities
    return (total / len(models)).astype("float32")


def out_of_fold(model, data, flip=True):
    """``(ids, probabilities, masks)`` of ``model`` on the held-out examples ``data``: lists
    of float16 probabilities (``ensemble_probabilities`` of the one model: ``(H, W)``, or
    ``(H, W, classes)``) and uint8 ``(H, W)`` masks, at each mask's resolution."""
    ids = example_ids(data)
    probabilities, masks = [], []
    for image, mask in data.dataset.as_numpy_iterator():
        probabilities.append(ensemble_probabilities([model], image.astype("float32"),
                                                    flip=flip).astype("float16"))
        masks.append(np.asarray(mask, np.uint8))
    if len(masks) != len(ids):
        raise ValueError(f"{data.name} yielded {len(masks)} examples for {len(ids)} ids.")
    return ids, probabilities, masks


def write_oof(path, ids, probabilities, masks, folds, fold, overwrite=False):
    """``oof.npz`` (atomically): ``ids`` (str), ``folds``, ``fold``, and per example ``i``
    (zero-padded) ``probability_i`` (float16) and ``mask_i`` (uint8). An existing ``path``
    keras_drn did not write is refused unless ``overwrite`` (``keras_drn.atomic``)."""
    arrays = {"ids": np.asarray(ids, dtype=str), "folds": np.int64(folds),
              "fold": np.int64(fold)}
    width = len(str(max(len(ids) - 1, 0)))
    for i, (probability, mask) in enumerate(zip(probabilities, masks)):
        arrays[f"probability_{i:0{width}d}"] = np.asarray(probability, np.float16)
        arrays[f"mask_{i:0{width}d}"] = np.asarray(mask, np.uint8)
    return atomic.write_atomically(path, lambda temporary: np.savez_compressed(
        temporary, **arrays), "run", overwrite)


_REWRITE = ("delete it and rerun the fold's keras-drn train --folds K --fold I command (a "
            "complete fold rewrites a missing oof.npz without training)")


def read_oof(path):
    """``write_oof``'s file as a dict: ``ids`` (tuple), ``folds``, ``fold`` (ints),
    ``probabilities`` and ``masks`` (lists). ValueError naming the file and how to rewrite it
    when it is truncated or corrupt, lacks an entry, or holds probabilities that are not
    finite or outside [0, 1]."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {path}: keras-drn train --folds K --fold I writes it at "
                                "the end of the fold; rerun the fold's command to write it.")
    try:
        with np.load(path, allow_pickle=False) as stored:
            ids = tuple(str(v) for v in stored["ids"])
            probabilities = [stored[k] for k in sorted(k for k in stored if
                                                       k.startswith("probability_"))]
            masks = [stored[k] for k in sorted(k for k in stored if k.startswith("mask_"))]
            folds, fold = int(stored["folds"]), int(stored["fold"])
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile,
            zipfile.LargeZipFile) as error:
        raise ValueError(f"{path} is damaged (truncated, corrupt or not an oof.npz of "
                         f"keras_drn: {type(error).__name__}: {error}); {_REWRITE}.") from error
    if not len(ids) == len(probabilities) == len(masks):
        raise ValueError(f"{path} is inconsistent: {len(ids)} ids, {len(probabilities)} "
                         f"probabilities, {len(masks)} masks; {_REWRITE}.")
    for image_id, probability in zip(ids, probabilities):
        values = np.asarray(probability, np.float32)
        if not np.isfinite(values).all() or values.min(initial=0) < 0 or values.max(
                initial=0) > 1:
            bad = "not finite (NaN or inf)" if not np.isfinite(values).all() else (
                f"outside [0, 1] ({values.min():g} to {values.max():g})")
            raise ValueError(f"{path}: the probabilities of {image_id!r} are {bad}, which no "
                             f"model's sigmoid gives; {_REWRITE}.")
    return {"ids": ids, "folds": folds, "fold": fold, "probabilities": probabilities,
            "masks": masks}


def _dice(prediction, mask):
    valid = mask != IGNORE_LABEL
    truth = (mask == 1) & valid
    prediction = prediction & valid
    total = int(truth.sum()) + int(prediction.sum())
    return 1.0 if total == 0 else 2.0 * int((truth & prediction).sum()) / total


def image_dice(probabilities, masks, threshold=0.5, min_size=0):
    """Per-image Dice of binary probabilities at ``threshold`` (components under
    ``min_size`` pixels dropped): float64 ``(images,)``, Kaggle's rule: 1 where the mask and
    the prediction are both empty; pixels labelled 255 are left out."""
    from keras_drn.workflows.submission import remove_small_components

    scores = []
    for probability, mask in zip(probabilities, masks):
        prediction = np.asarray(probability, np.float32) > threshold
        if min_size:
            prediction = remove_small_components(prediction, min_size).astype(bool)
        scores.append(_dice(prediction, np.asarray(mask)))
    return np.asarray(scores, np.float64)


@dataclasses.dataclass(frozen=True)
class ThresholdSearch:
    """The best threshold and minimum component size found by ``search_threshold``.

    Attributes:
        threshold, min_size: the pair with the highest mean per-image Dice (ties: the
            threshold nearest 0.5, then the smaller min_size).
        dice: that mean Dice, in [0, 1].
        dice_at_half: the mean Dice at threshold 0.5, min_size 0 (the untuned baseline).
        images: how many images were scored.
        scores: ``((threshold, min_size, dice), ...)`` for every pair tried.
    """

    threshold: float
    min_size: int
    dice: float
    dice_at_half: float
    images: int
    scores: tuple

    def as_dict(self):
        return {"threshold": self.threshold, "min_size": self.min_size, "dice": self.dice,
                "dice_at_0.5": self.dice_at_half, "images": self.images,
                "scores": [list(s) for s in self.scores]}

    def __str__(self):
        return (f"out-of-fold mean Dice {self.dice:.4f} at threshold {self.threshold:g}, "
                f"min size {self.min_size} ({self.dice_at_half:.4f} at 0.5; {self.images} "
                "images)")


def search_threshold(probabilities, masks, thresholds=THRESHOLDS, min_sizes=(0,)):
    """The ``(threshold, min_size)`` of ``thresholds`` x ``min_sizes`` with the highest mean
    per-image Dice (``image_dice``) of binary ``probabilities`` ``(H, W)`` against 0/1
    ``masks`` (255 ignored). Returns a ``ThresholdSearch``."""
    if not len(probabilities) or len(probabilities) != len(masks):
        raise ValueError(f"Need as many probabilities as masks, at least one; received "
                         f"{len(probabilities)} and {len(masks)}.")
    if any(np.ndim(p) != 2 for p in probabilities):
        raise ValueError("The threshold search takes binary probabilities (H, W): a "
                         "multi-class run picks classes by argmax, not a threshold.")
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or not all(0 < t < 1 for t in thresholds):
        raise ValueError(f"thresholds must be in (0, 1); received {thresholds!r}.")
    min_sizes = tuple(int(m) for m in min_sizes)
    if not min_sizes or min(min_sizes) < 0:
        raise ValueError(f"min_sizes must be integers >= 0; received {min_sizes!r}.")
    scores = tuple((t, m, float(image_dice(probabilities, masks, t, m).mean()))
                   for m in min_sizes for t in thresholds)
    best = max(scores, key=lambda s: (s[2], -abs(s[0] - 0.5), -s[1]))
    half = float(image_dice(probabilities, masks, 0.5, 0).mean())
    return ThresholdSearch(threshold=best[0], min_size=best[1], dice=best[2],
                           dice_at_half=half, images=len(masks), scores=scores)


def tune(run_dirs, output=None, thresholds=THRESHOLDS, min_sizes=(0,), overwrite=False):
    """``search_threshold`` on the out-of-fold predictions (``oof.npz``) of the fold runs
    ``run_dirs``, written to ``output`` (default ``threshold.json`` in their common parent
    folder) with the runs and the folds they cover. Returns the ``ThresholdSearch``.

    ValueError when the runs come from different k-fold splits, hold the same fold twice or
    share held-out ids, and when they hold only some folds of their split and ``output`` is
    the default ``threshold.json`` (which ``keras-drn ensemble`` uses for all folds): give
    ``output`` for a search on those folds alone. FileExistsError (before the search) for an
    ``output`` that keras_drn did not write, unless ``overwrite``."""
    run_dirs = [pathlib.Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("No fold runs given to tune the threshold on.")
    default = output is None
    if default:
        parents = {d.resolve().parent for d in run_dirs}
        if len(parents) != 1:
            raise ValueError("The runs are in different folders: say where to write the "
                             "threshold (output=, keras-drn threshold --output FILE).")
        output = parents.pop() / THRESHOLD
    atomic.check_replaceable([output], overwrite, "--output")
    stored = [read_oof(d / OOF) for d in run_dirs]
    counts = {s["folds"] for s in stored}
    if len(counts) > 1:
        raise ValueError(f"The runs come from different k-fold splits (folds {sorted(counts)})"
                         ": give the folds of one split.")
    held = [s["fold"] for s in stored]
    if len(set(held)) != len(held):
        raise ValueError(f"The runs hold fold(s) {sorted({f for f in held if held.count(f) > 1})}"
                         " twice: give each fold once.")
    split_folds = next(iter(counts))
    if default and sorted(held) != list(range(split_folds)):
        missing = sorted(set(range(split_folds)) - set(held))
        raise ValueError(
            f"The runs hold fold(s) {sorted(held)} of {split_folds} (missing {missing}): a "
            f"search on them would replace the {output} that keras-drn ensemble uses for "
            f"all folds. Give every fold (or the folder holding the fold-* runs), or write "
            f"this search elsewhere with --output FILE (output=).")
    ids = [i for s in stored for i in s["ids"]]
    if len(set(ids)) != len(ids):
        shared = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"Held-out ids appear in two folds ({shared}): the runs are not "
                         "folds of one split.")
    search = search_threshold([p for s in stored for p in s["probabilities"]],
                              [m for s in stored for m in s["masks"]],
                              thresholds=thresholds, min_sizes=min_sizes)
    record = dict(search.as_dict(), folds=split_folds, folds_used=sorted(held),
                  runs=[str(d) for d in run_dirs])
    atomic.write_json(output, record, overwrite=overwrite, option="--output")
    return search


def read_threshold(folder):
    """``folder/threshold.json`` (``tune``) as a dict, or ``None`` when absent."""
    path = pathlib.Path(folder) / THRESHOLD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        threshold, min_size = float(record["threshold"]), int(record.get("min_size", 0))
        if not 0 < threshold < 1 or min_size < 0:  # NaN fails the first test too
            raise ValueError(f"threshold {threshold!r} outside (0, 1) or min_size "
                             f"{min_size!r} < 0")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not a threshold file of keras_drn.workflows.folds.tune ({error}); "
                         "delete it or run keras-drn threshold again.") from error
    return record
