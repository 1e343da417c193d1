"""Scenes as an artifact takes them: the embedded synthetic scenes (``keras_drn.data``) for
verification and int8 calibration, and user calibration data checked against the job."""

import numpy as np

from keras_drn.data.synthetic import make_scenes

# Sizes checked when height and width stay dynamic (one even, one odd: the crop paths).
VERIFY_SIZES = ((64, 96), (75, 57))
CALIBRATION_SAMPLES = 32  # embedded scenes for representative_data="embedded"


def scenes(count, height, width, seed):
    """``count`` embedded scenes, float32 RGB in [0, 1], cropped to ``height x width``."""
    images, _, _ = make_scenes(count, size=max(height, width, 16), seed=seed)
    return images[:, :height, :width]


def artifact_inputs(images, job):
    """Scenes in [0, 1] as the artifact takes them: raw RGB (uint8 end to end, 0-255 float32
    for a model that normalises inside) or normalised with ``job.mean``/``job.std``."""
    raw = np.round(images * 255)
    if job.end_to_end:
        return raw.astype("uint8")
    if job.raw_input:
        return raw.astype("float32")
    return ((images - np.float32(job.mean)) / np.float32(job.std)).astype("float32")


def calibration(representative_data, job, channels):
    """``representative_data`` as one array of samples in the artifact's input format."""
    if isinstance(representative_data, str):
        if representative_data != "embedded":
            raise ValueError("representative_data must be 'embedded' (the embedded synthetic "
                             "scenes), an array of samples or an iterable of arrays; received "
                             f"{representative_data!r}.")
        height, width = job.batch_shape[1:3] if job.static else VERIFY_SIZES[0]
        return artifact_inputs(scenes(CALIBRATION_SAMPLES, height, width, seed=1), job)
    if isinstance(representative_data, np.ndarray) or hasattr(representative_data, "shape"):
        data = np.asarray(representative_data)
    else:
        items = [np.asarray(item) for item in representative_data]
        if not items:
            raise ValueError("representative_data is empty.")
        data = np.concatenate([item if item.ndim == 4 else item[None] for item in items])
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4 or data.shape[-1] != channels or not len(data):
        raise ValueError(f"representative_data must hold samples shaped (height, width, "
                         f"{channels}); received shape {data.shape}.")
    for fixed, got in zip(job.batch_shape[1:3], data.shape[1:3]):
        if fixed is not None and fixed != got:
            raise ValueError(f"representative_data samples are {data.shape[1:3]}; the export "
                             f"takes {tuple(job.batch_shape[1:3])}.")
    if job.end_to_end and data.dtype != np.uint8:
        raise ValueError("With end_to_end=True the artifact takes uint8 RGB: representative_data "
                         f"must be uint8 images; received dtype {data.dtype}.")
    return data.astype(job.input_dtype)
