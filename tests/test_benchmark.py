"""The speed tools (tools/benchmark*.py): they run, compare like with like, and their
correctness checks hold. Speed itself is never asserted here (machines are noisy); the
numbers live in the README."""

import importlib.util
import json
import pathlib
import textwrap

import keras
import pytest

from tests.published import PARAMETERS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = load_tool("benchmark")


@pytest.fixture
def reference_dir(tmp_path):
    """A stand-in for a github.com/fyu/drn checkout: a ``drn.py`` whose ``drn_d_22`` is the
    tests' independent PyTorch DRN (the reference's module names, avgpool and fc last) with
    the reference's depths, typed in by hand (tests/published.py), not keras_drn's."""
    pytest.importorskip("torch")
    folder = tmp_path / "drn"
    folder.mkdir()
    (folder / "drn.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.published import DEPTHS
        from tests.weights.torch_reference import Net

        def drn_d_22(pretrained=False, num_classes=1000):
            model = Net("D", False, DEPTHS["drn_d_22"], num_classes)
            model.out_dim = 512
            return model
    """))
    (folder / "segment.py").write_text("x.cuda(async=True)\n")  # as the reference's: py2 only
    return folder


def test_benchmark_without_reference_writes_table_and_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert benchmark.main(["--variant", "drn-d-22", "--task", "segmentation", "--size", "32x48",
                           "--batch", "1", "--mode", "inference", "--warmup", "1", "--steps", "1",
                           "--rounds", "2", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "drn_d_22 seg 32x48 b1 inference" in out
    report = json.loads(path.read_text())
    assert report["environment"]["backend"] == keras.backend.backend()
    assert report["environment"]["keras"] == keras.__version__
    (result,) = report["results"]
    assert (result["mode"], result["height"], result["width"]) == ("inference", 32, 48)
    ours = result["keras_drn"]
    assert len(ours["rounds"]) == 2 and ours["images_per_s"] > 0
    assert ours["peak_memory_mb"] >= 0
    assert "reference" not in result and "ratio" not in result
    assert keras.config.dtype_policy().name == "float32"  # the policy is restored


def test_benchmark_runs_the_reference_in_the_same_process(reference_dir, capsys):
    workload = benchmark.Workload("drn_d_22", "segmentation", 32, 32, 1, "training")
    reference = benchmark.import_reference(str(reference_dir))
    assert reference[1] is None  # segment.py does not import: DRNSeg is assembled
    result = benchmark.run_workload(workload, "mixed_bfloat16", "auto", reference, warmup=1,
                                    steps=1, rounds=1)
    ref = result["reference"]
    assert ref["images_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["keras_drn"]["images_per_s"]
                                            / ref["images_per_s"])
    side = benchmark.ReferenceSide(reference, workload, "float32")
    out = side._forward()  # DRNSeg's log-probabilities at the input size
    assert tuple(out.shape) == (1, 19, 32, 32)
    assert float(out.detach().exp().sum(1).mean()) == pytest.approx(1.0, abs=1e-4)
    # segment.py's fill_up_weights: a symmetric, separable bilinear x8 kernel, whose mass is
    # 8 * 8 (each output pixel's weights sum to 1), frozen
    kernel = side.model.up.weight[0, 0].detach()
    assert not side.model.up.weight.requires_grad and kernel.shape == (16, 16)
    assert float(kernel.sum()) == pytest.approx(64.0)
    assert float((kernel - kernel.T).abs().max()) < 1e-6


# The fused BatchNormalization kernel (keras_drn.layers.fused_batch_norm) and the fused optimizer
# op (keras_drn.workflows.training) are TensorFlow's: under JAX and PyTorch each baseline side is the same
# model as keras_drn's, so the backend adds nothing here.
@pytest.mark.tensorflow_only
def test_benchmark_times_the_baselines_in_the_same_rounds():
    workload = benchmark.Workload("drn_d_22", "segmentation", 32, 32, 2, "training")
    result = benchmark.run_workload(workload, "float32", "auto", warmup=1, steps=1, rounds=2,
                                    batch_norm_baseline=True, sgd_baseline=True)
    table = benchmark.format_table([result])
    for side, ratio, label in (("keras_batch_norm", "fused_batch_norm_ratio", "vs Keras BN"),
                               ("keras_elementwise_sgd", "fused_sgd_ratio",
                                "vs element-wise SGD")):
        base = result[side]
        assert len(base["rounds"]) == 2 and base["images_per_s"] > 0
        assert result[ratio] == pytest.approx(
            result["keras_drn"]["images_per_s"] / base["images_per_s"])
        assert label in table
    with pytest.raises(ValueError, match="training only"):
        benchmark.run_workload(benchmark.Workload("drn_d_22", "segmentation", 32, 32, 1,
                                                  "inference"), "float32", "auto",
                               sgd_baseline=True)


def test_benchmark_times_the_folded_model_in_the_same_rounds():
    workload = benchmark.Workload("drn_d_22", "segmentation", 32, 32, 1, "inference")
    result = benchmark.run_workload(workload, "float32", "auto", warmup=1, steps=1, rounds=2,
                                    fold_batch_norm=True)
    folded = result["keras_folded"]
    assert len(folded["rounds"]) == 2 and folded["images_per_s"] > 0
    assert result["fold_batch_norm_ratio"] == pytest.approx(
        folded["images_per_s"] / result["keras_drn"]["images_per_s"])
    assert "folded" in benchmark.format_table([result])
    side = benchmark.KerasFoldedSide(workload, "float32", "auto")
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in side.model._flatten_layers(recursive=True))


def test_benchmark_reference_classifier(reference_dir):
    workload = benchmark.Workload("drn_d_22", "classification", 224, 224, 1, "inference")
    reference = benchmark.import_reference(str(reference_dir))
    side = benchmark.ReferenceSide(reference, workload, "float32")
    # The stand-in is the reference's network: its published parameter count.
    assert sum(p.numel() for p in side.model.parameters()) == PARAMETERS["drn_d_22"]
    assert tuple(side._forward().shape) == (1, 1000)
    side.step()


@pytest.mark.parametrize("argv, message", [
    (["--size", "4"], "sides >= 8"),
    (["--size", "12x"], "N or HxW"),
    (["--variant", "drn_x_99"], "unknown variant 'drn_x_99'"),
    (["--reference", "/nonexistent"], "no drn.py there"),
    (["--mode", "both", "--fold-batch-norm"], "inference only"),
    (["--suite", "cpu", "--fold-batch-norm"], "training workloads: drn_d_22 seg 128x128"),
    (["--mode", "inference", "--sgd-baseline"], "training only"),
])
def test_benchmark_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        benchmark.main(argv)
    assert message in str(raised.value) + capsys.readouterr().err


def test_benchmark_reference_classifier_needs_224(reference_dir):
    with pytest.raises(SystemExit, match="224x224 inputs only"):
        benchmark.main(["--size", "64", "--reference", str(reference_dir)])


def test_blurpool_strided_matches_full_resolution_forward_and_backward():
    result = load_tool("benchmark_blurpool").run(shape=(2, 15, 12, 16), groups=4, steps=1,
                                                 rounds=1, warmup=0)
    assert result["max_output_difference"] < 1e-5
    assert result["max_gradient_difference"] < 1e-3
    assert result["strided_s"] > 0 and result["full_then_subsample_s"] > 0


@pytest.mark.slow
def test_pipeline_benchmark_times_both_inputs():
    pytest.importorskip("tensorflow")
    result = load_tool("benchmark_pipeline").run(images=4, image_size=40, crop=32, batch=2,
                                                 steps=1, rounds=1)
    assert result["pipeline_step_s"] > 0 and result["in_memory_step_s"] > 0
    assert result["overhead"] == pytest.approx(
        result["pipeline_step_s"] / result["in_memory_step_s"] - 1)


profile_onednn = load_tool("profile_onednn")

# oneDNN 3.x verbose output as TensorFlow 2.21 prints it (a header, two convolutions, a reorder).
VERBOSE = """\
onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,auxiliary,problem_desc,exec_time
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,src:f32::blocked:acdb::f0 wei:f32::blocked:cdba::f0 bia:undef::undef::: dst:f32::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,mb1_ic16oc16_ih8oh8kh3sh1dh1ph2_iw8ow8kw3sw1dw1pw2,0.5
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:blk,undef,src:f32::blocked:cdba::f0 dst:f32::blocked:Bcda16b::f0,,,16x16x3x3,3.25
not a verbose line
onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,src:f32::blocked:acdb::f0 wei:f32::blocked:cdba::f0 bia:undef::undef::: dst:f32::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,mb1_ic16oc16_ih8oh8kh3sh1dh1ph2_iw8ow8kw3sw1dw1pw2,0.25
"""


def test_profile_sums_onednn_primitives_by_problem():
    groups = profile_onednn.parse_verbose(VERBOSE.splitlines())
    conv = ("convolution", "brg_conv_fwd:avx512_core", "forward_training",
            "mb1_ic16oc16_ih8oh8kh3sh1dh1ph2_iw8ow8kw3sw1dw1pw2")
    reorder = ("reorder", "jit:blk", "undef", "f32 cdba -> f32 Bcda16b 16x16x3x3")
    assert groups == {conv: [0.75, 2], reorder: [3.25, 1]}
    text = profile_onednn.summarise(10.0, {k: (ms, n) for k, (ms, n) in groups.items()}, 1)
    assert text.startswith("step 10.0 ms, oneDNN 4.0 ms (40%), other 6.0 ms")
    assert "reorder undef" in text and "convolution forward_training" in text


@pytest.mark.tensorflow_only  # it profiles TensorFlow's oneDNN, whatever the suite's backend
def test_profile_runs_both_sides_in_subprocesses(reference_dir, capsys):
    profile_onednn.main(["--size", "32", "--batch", "2", "--warmup", "1", "--steps", "1",
                         "--reference", str(reference_dir)])
    out = capsys.readouterr().out
    ours, reference = out.split("\nkeras_drn: ")[1].split("\nreference: ")
    # TensorFlow on a CPU runs the convolutions of a training step through oneDNN.
    for direction in ("forward_training", "backward_data", "backward_weights"):
        assert f"convolution {direction}" in ours
    assert reference.startswith("step ")
