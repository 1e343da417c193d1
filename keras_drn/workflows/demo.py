"""The demo: a DRN segmenter trained from scratch on the embedded synthetic scenes
(``keras_drn.data.synthetic``), scored on held-out scenes, and a picture of its predictions.

The recipe is data, ``RECIPE`` (a ``DemoRecipe``): ``keras-drn demo`` reads its flags' defaults
there and calls ``run``. The budget is that of keras_drn 0.1's demo (480 steps of batch 16 on
768 scenes seen 10 times, cross-entropy), which found the objects and confused their classes:
its models scored about as badly on their training scenes as on new ones, so they were
undertrained rather than overfitted. What changed, within that budget:

- More updates: batch 8. On a CPU a step of batch 8 costs well over half a step of batch 16
  (``tools/demo_seeds.py`` measures the ratio), so the recipe takes fewer than twice the steps.
- Fresh scenes: the generator makes as many as asked, so every step sees new ones (one epoch)
  instead of the same 768 again.
- The loss is the cross-entropy plus the Lovász-Softmax loss (Berman et al., CVPR 2018), a
  surrogate of the IoU the demo reports: the objects cover a few percent of the pixels (a line
  1 to 3 pixels wide, a disk of radius 4 to 8 on 48x48), so the cross-entropy alone is ruled
  by the background and the thin lines hardly count.
- ParseNet's global context (Liu et al. 2015) on the last level: every scene holds one object,
  so features pooled over the whole scene tell every pixel which object it is.
- The head stays GCN + Boundary Refinement (Peng et al. 2017) fused from output stride 2 up,
  which keeps the thin lines that the reference's x8 bilinear upsampling (head ``"drn"``)
  blurs; AdamW with the DRN recipe's polynomial decay (power 0.9).
"""

import dataclasses
import time

import numpy as np

LOSSES = ("crossentropy", "crossentropy+lovasz")


@dataclasses.dataclass(frozen=True)
class DemoRecipe:
    """What ``run`` trains and how; ``RECIPE`` holds the defaults.

    Fields: ``variant`` (backbone, ``keras_drn.list_models()``), ``head`` (``"drn"`` or
    ``"gcn"``), ``context`` (``None`` or ``"parsenet"``), ``size`` (scene side in pixels),
    ``train`` and ``val`` (numbers of scenes), ``epochs``, ``batch_size``, ``learning_rate``
    (AdamW, polynomial decay to 1e-4 over the run), ``loss`` (one of ``LOSSES``),
    ``mixed_precision`` (``keras_drn.workflows.precision`` choices).
    """

    variant: str = "drn_d_22"
    head: str = "gcn"
    context: str | None = "parsenet"
    size: int = 48
    train: int = 4800
    val: int = 128
    epochs: int = 1
    batch_size: int = 8
    learning_rate: float = 2e-3
    loss: str = "crossentropy+lovasz"
    mixed_precision: str = "auto"

    @property
    def steps(self):
        """Optimizer steps of the run: ``epochs * ceil(train / batch_size)``."""
        return self.epochs * -(-self.train // self.batch_size)

    def check(self):
        """Raises a ``ValueError`` naming a field whose value is out of range; returns self."""
        from keras_drn.models.heads import CONTEXTS, HEADS
        from keras_drn.models.variants import VARIANTS
        from keras_drn.workflows.precision import CHOICES

        for name in ("train", "val", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; received {name}={value!r}.")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 16:
            raise ValueError(f"size must be an int >= 16; received size={self.size!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; received "
                             f"learning_rate={self.learning_rate!r}.")
        choices = {"variant": tuple(VARIANTS), "head": tuple(HEADS),
                   "context": (None, *CONTEXTS), "loss": LOSSES,
                   "mixed_precision": CHOICES}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {valid}; received "
                                 f"{name}={getattr(self, name)!r}.")
        return self


RECIPE = DemoRecipe()


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What ``run`` measured: the ``recipe`` and ``seed`` it ran, per-class validation ``iou``
    (``{class name: IoU in [0, 1]}``), ``miou``, optimizer ``steps``, ``train_seconds``
    (wall clock of ``fit``), the ``backend`` and dtype ``policy``, and the picture ``output``."""

    recipe: DemoRecipe
    seed: int
    iou: dict
    miou: float
    steps: int
    train_seconds: float
    backend: str
    policy: str
    output: str


def _loss(name):
    from keras_drn.constants import IGNORE_LABEL
    from keras_drn.losses import LovaszSoftmaxLoss, SparseCrossentropy, WeightedSum

    crossentropy = SparseCrossentropy(from_logits=True, ignore_class=IGNORE_LABEL)
    if name == "crossentropy":
        return crossentropy
    return WeightedSum([(crossentropy, 1.0), (LovaszSoftmaxLoss(ignore_class=IGNORE_LABEL), 1.0)])


def build_model(recipe, statistics):
    """The recipe's segmenter, compiled: ``keras_drn.DRNSegmenter(recipe.variant, head=
    recipe.head)`` for the scenes' classes, taking raw 0-255 RGB normalised with ``statistics``
    (``(mean, std)`` of 0-1 RGB), AdamW with the polynomial decay over ``recipe.steps``, the
    recipe's loss and the ``miou`` metric. Build it under the recipe's dtype policy."""
    import keras

    import keras_drn
    from keras_drn.data import CLASS_NAMES
    from keras_drn.evaluation import segmentation_miou

    classes = len(CLASS_NAMES)
    model = keras_drn.DRNSegmenter(recipe.variant, num_classes=classes, head=recipe.head,
                                   context=recipe.context, include_preprocessing=True,
                                   mean=statistics[0], std=statistics[1])
    # Keras's PolynomialDecay ends at 1e-4, not poly_schedule's 0.
    schedule = keras.optimizers.schedules.PolynomialDecay(recipe.learning_rate, recipe.steps,
                                                          power=0.9)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    # keras_drn.workflows.training.compile_segmenter's metric and jit, the recipe's loss.
    model.compile(optimizer=optimizer, loss=_loss(recipe.loss),
                  metrics=[segmentation_miou(classes)], jit_compile="auto")
    return model


def run(seed=0, output="drn_demo.png", overwrite=False, verbose=2, **options):
    """Trains ``RECIPE`` (with ``options`` replacing its fields) from ``seed``, prints the
    validation IoU per class and the mIoU, and writes ``output``, a PNG of six validation
    scenes (image | ground truth | prediction).

    Args:
        seed: seed of the scenes and of the initialisation (an int >= 0).
        output: the PNG to write; an existing file that keras_drn did not write is refused
            before any work unless ``overwrite``.
        overwrite: replace such a file.
        verbose: Keras's ``fit`` verbosity (2: one line per epoch).
        **options: ``DemoRecipe`` fields (``epochs=1``, ``head="drn"``, ...); an unknown name
            or a value out of range is a ``ValueError``, before any work.

    Returns:
        A ``DemoResult``.
    """
    fields = [field.name for field in dataclasses.fields(DemoRecipe)]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"Unknown demo options {unknown}; valid names are {fields}.")
    recipe = dataclasses.replace(RECIPE, **options).check()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; received seed={seed!r}.")

    import keras

    from keras_drn import atomic
    from keras_drn.data import CLASS_NAMES, scene_split
    from keras_drn.evaluation import confusion_matrix, iou_per_class, iou_table
    from keras_drn.evaluation.visualize import comparison_grid, save_png
    from keras_drn.workflows import precision

    atomic.check_replaceable([output], overwrite, "--output")
    keras.utils.set_random_seed(seed)
    x_train, y_train, x_val, y_val, statistics = scene_split(
        recipe.train, recipe.val, size=recipe.size, seed=seed)
    policy = precision.apply(recipe.mixed_precision)
    model = build_model(recipe, statistics)
    print(
        f"{model.name}: {model.count_params():,} parameters, backend {keras.backend.backend()}, "
        f"{policy}; {recipe.train} training and {recipe.val} validation scenes of "
        f"{recipe.size}x{recipe.size} (classes: {', '.join(CLASS_NAMES)}); {recipe.epochs} "
        f"epochs of batch {recipe.batch_size} ({recipe.steps} steps), loss {recipe.loss}."
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=recipe.batch_size, epochs=recipe.epochs,
              verbose=verbose)
    elapsed = time.perf_counter() - start
    predictions = np.argmax(model.predict(x_val, batch_size=recipe.batch_size, verbose=0), -1)
    confusion = confusion_matrix(y_val, predictions, len(CLASS_NAMES))
    print(f"validation IoU (%) after {elapsed:.0f} s of training:")
    print(iou_table(confusion, CLASS_NAMES))
    grid = comparison_grid(x_val[:6], y_val[:6], predictions[:6], len(CLASS_NAMES),
                           class_names=CLASS_NAMES)
    save_png(grid, output, overwrite=overwrite)
    print(f"wrote {output} (image | ground truth | prediction)")
    ious = iou_per_class(confusion)
    return DemoResult(
        recipe=recipe, seed=seed,
        iou={name: float(value) for name, value in zip(CLASS_NAMES, ious)},
        miou=float(np.nanmean(ious)), steps=recipe.steps, train_seconds=elapsed,
        backend=keras.backend.backend(), policy=policy, output=str(output),
    )
