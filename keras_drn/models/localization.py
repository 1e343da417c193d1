"""Weakly supervised localisation with a DRN classifier: class activation maps and boxes.

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017, section 4: remove the global
pooling, apply the classifier at every position of the output-stride-8 map (28x28 at
224x224), softmax over classes per position gives ``f(c, w, h)``; the box of class ``c`` is
the smallest box enclosing the positions where ``c`` is the dominant class and
``f(c, w, h) > t``.
"""

import keras
import numpy as np
from keras import ops

from keras_drn.models.drn import pyramid_outputs


def activation_map_model(model):
    """A model mapping images to per-position class probabilities ``(batch, h, w, classes)``.

    ``model`` is a keras_drn classifier (``include_top=True``): its ``fc`` Dense layer is
    applied to the last level's map of its ``pyramid_outputs`` ``(batch, h, w, channels)``
    (Dense acts on the channel axis, so it is the 1x1 convolution the paper uses), followed by
    a softmax over classes.
    """
    try:
        fc = model.get_layer("fc")
    except ValueError as error:
        raise ValueError(
            f"Model {model.name!r} has no 'fc' classifier layer; build it with "
            "include_top=True (for example keras_drn.DRN_C_26(classes=...))."
        ) from error
    scores = fc(list(pyramid_outputs(model).values())[-1])
    probabilities = keras.layers.Softmax(dtype="float32", name="cam_softmax")(scores)
    return keras.Model(model.input, probabilities, name=f"{model.name}_cam")


def class_activation_maps(model, images, batch_size=8):
    """Per-position class probabilities of ``images`` ``(batch, H, W, 3)`` (preprocessed as
    the model expects) as a numpy array ``(batch, ceil(H / 8), ceil(W / 8), classes)``."""
    return np.asarray(activation_map_model(model).predict(images, batch_size=batch_size,
                                                          verbose=0))


def box_from_map(probabilities, class_id, threshold=0.5, image_size=None):
    """The paper's box for ``class_id`` from one map ``(h, w, classes)``.

    Returns ``(x0, y0, x1, y1)`` (inclusive-exclusive pixel bounds in the image when
    ``image_size=(H, W)`` is given, else in map cells), or ``None`` when no position has
    ``class_id`` dominant with probability above ``threshold``.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3 or not 0 <= class_id < probabilities.shape[-1]:
        raise ValueError(
            f"Expected a (h, w, classes) map and 0 <= class_id < classes; received shape "
            f"{probabilities.shape} and class_id={class_id}."
        )
    dominant = np.argmax(probabilities, axis=-1) == class_id
    rows, cols = np.nonzero(dominant & (probabilities[..., class_id] > threshold))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    if image_size is None:
        return (int(x0), int(y0), int(x1), int(y1))
    height, width = image_size
    sy, sx = height / probabilities.shape[0], width / probabilities.shape[1]
    return (int(round(x0 * sx)), int(round(y0 * sy)), min(width, int(round(x1 * sx))),
            min(height, int(round(y1 * sy))))


def box_iou(a, b):
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when either is None)."""
    if a is None or b is None:
        return 0.0
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def heatmap_overlay(image, heat, alpha=0.5):
    """Renders ``heat`` ``(h, w)`` in [0, 1] over ``image`` ``(H, W, 3)`` in [0, 1] as uint8 RGB:
    the map is resized bilinearly to the image and coloured from blue (0) to red (1)."""
    image = np.asarray(image, dtype="float32")
    heat = np.asarray(heat, dtype="float32")[None, :, :, None]
    heat = np.asarray(ops.convert_to_numpy(
        ops.image.resize(heat, image.shape[:2], interpolation="bilinear")))[0, :, :, 0]
    heat = np.clip(heat, 0.0, 1.0)
    colour = np.stack([heat, 1.0 - np.abs(2 * heat - 1), 1.0 - heat], axis=-1)
    blended = (1 - alpha) * np.clip(image, 0, 1) + alpha * colour
    return (255 * blended).round().astype("uint8")
