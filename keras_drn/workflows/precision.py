"""The dtype policy ``mixed_precision="auto"`` chooses (``keras-drn train --mixed-precision``).

Mixed precision pays where the hardware has fast low-precision matrix units:

- GPUs: ``mixed_bfloat16`` on those with bfloat16 tensor cores (NVIDIA compute capability
  8.0 and newer: Ampere, Hopper; bfloat16 needs no loss scaling), ``mixed_float16`` on older
  ones (Volta, Turing: float16 tensor cores only).
- CPUs with AMX-BF16 (Intel Sapphire Rapids and newer; the ``amx_bf16`` flag of
  ``/proc/cpuinfo``): ``mixed_bfloat16`` on the TensorFlow backend, where oneDNN runs
  bfloat16 convolutions on AMX. From the ratios tools/benchmark.py measured here (2-core
  Xeon with AMX, TensorFlow 2.21, each precision against the reference in the same
  process, the reference's bfloat16 being 3.4x its float32 in inference and 2.1x in
  training): TensorFlow's bfloat16 is about 3.2x its float32 in DRN-C-26 inference and 1.4x
  in DRN-D-22 segmentation training. On JAX (XLA's CPU convolutions, jax 0.10) bfloat16 came
  out slower than float32 (about 0.87x in inference, 0.98x in training), and the PyTorch
  backend was not measured: both keep float32 on the CPU.
- Anything else: float32.
"""

import functools

from keras_drn.constants import DTYPE_POLICIES as POLICIES
# Backends whose CPU bfloat16 path was measured faster than float32 on an AMX CPU.
CPU_BFLOAT16_BACKENDS = ("tensorflow",)
CHOICES = ("auto",) + POLICIES


@functools.cache
def cpu_has_amx_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU has AMX-BF16 (Linux: the ``amx_bf16`` flag; False where unknown)."""
    try:
        with open(cpuinfo) as stream:
            for line in stream:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def gpu_capability():
    """``None`` without a GPU, else ``(major, minor)`` of the first GPU's compute
    capability as the Keras backend reports it (``(0, 0)`` where it reports none)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [device for device in jax.devices() if device.platform == "gpu"]
        if not gpus:
            return None
        capability = getattr(gpus[0], "compute_capability", None)
        return tuple(int(v) for v in str(capability).split(".")[:2]) if capability else (0, 0)
    if backend == "torch":
        import torch

        return torch.cuda.get_device_capability(0) if torch.cuda.is_available() else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return tuple(details.get("compute_capability", (0, 0)))


def auto_policy(backend=None, capability=..., amx=None):
    """The dtype policy name "auto" means on this machine (rules in the module docstring).

    ``backend``, ``capability`` (``gpu_capability()``) and ``amx`` (``cpu_has_amx_bf16()``)
    default to what this process sees."""
    import keras

    backend = backend or keras.backend.backend()
    capability = gpu_capability() if capability is ... else capability
    if capability is not None:
        return "mixed_bfloat16" if tuple(capability) >= (8, 0) else "mixed_float16"
    amx = cpu_has_amx_bf16() if amx is None else amx
    if amx and backend in CPU_BFLOAT16_BACKENDS:
        return "mixed_bfloat16"
    return "float32"


def resolve(mixed_precision):
    """The policy name for ``mixed_precision``: ``"auto"`` (``auto_policy()``), ``True``
    (``"mixed_float16"``), ``False`` or ``None`` (``"float32"``) or a policy name;
    ValueError naming the choices for anything else."""
    if mixed_precision == "auto":
        return auto_policy()
    if mixed_precision is True:
        return "mixed_float16"
    if mixed_precision in (False, None):
        return "float32"
    if mixed_precision not in POLICIES:
        raise ValueError(f"mixed_precision must be one of {CHOICES}, True or False; received "
                         f"{mixed_precision!r}.")
    return mixed_precision


def apply(mixed_precision):
    """Sets the global dtype policy ``resolve(mixed_precision)`` names and returns its name;
    ``"auto"`` keeps a policy other than float32 that the caller set already."""
    import keras

    current = keras.config.dtype_policy().name
    if mixed_precision == "auto" and current != "float32":
        return current
    keras.config.set_dtype_policy(resolve(mixed_precision))
    return keras.config.dtype_policy().name
