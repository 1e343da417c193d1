import keras
import pytest

from keras_drn.workflows import precision

INTEL_AMX = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
AVX512_ONLY = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n"


@pytest.mark.parametrize("text, expected", [(INTEL_AMX, True), (AVX512_ONLY, False),
                                            ("", False)])
def test_amx_is_read_from_the_cpu_flags(tmp_path, text, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    precision.cpu_has_amx_bf16.cache_clear()
    # avx512_bf16 alone (Cooper Lake) must not count: the flag is matched whole.
    assert precision.cpu_has_amx_bf16(str(path)) is expected
    assert precision.cpu_has_amx_bf16(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("backend, capability, amx, expected", [
    ("jax", (9, 0), False, "mixed_bfloat16"),      # Hopper
    ("torch", (8, 0), False, "mixed_bfloat16"),    # Ampere
    ("tensorflow", (7, 0), True, "mixed_float16"),  # Volta: no bfloat16 tensor cores
    ("tensorflow", None, True, "mixed_bfloat16"),  # AMX CPU, measured faster on TF
    ("jax", None, True, "float32"),                # AMX CPU, XLA's bf16 measured slower
    ("torch", None, True, "float32"),              # not measured
    ("tensorflow", None, False, "float32"),        # AVX-512 only
])
def test_auto_policy_rules(backend, capability, amx, expected):
    assert precision.auto_policy(backend, capability, amx) == expected


def test_auto_on_this_machine_follows_its_cpu_and_gpu():
    expected = precision.auto_policy(keras.backend.backend(), precision.gpu_capability(),
                                     precision.cpu_has_amx_bf16())
    assert precision.resolve("auto") == expected


def test_resolve_names_the_choices():
    assert precision.resolve(False) == "float32"
    assert precision.resolve(True) == "mixed_float16"
    assert precision.resolve("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="one of .*auto.*mixed_bfloat16"):
        precision.resolve("bf16")


def test_apply_sets_the_policy_and_auto_keeps_the_callers():
    assert precision.apply("mixed_float16") == "mixed_float16"
    assert keras.config.dtype_policy().name == "mixed_float16"
    assert precision.apply("auto") == "mixed_float16"  # the caller's choice stays
    assert precision.apply(False) == "float32"
    assert precision.apply("auto") == keras.config.dtype_policy().name == precision.resolve(
        "auto")
