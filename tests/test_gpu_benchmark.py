"""tools/gpu_benchmark.py (the GPU check of issue 17): its plan, its table, its stand-in
reference. The whole run is tried by hand with ``bash tools/gpu_check.sh --tiny``."""

import importlib.util
import pathlib

import pytest

TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "gpu_benchmark.py"


def _tool():
    spec = importlib.util.spec_from_file_location("tools_gpu_benchmark", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plan_checks_first_then_bfloat16_before_float32():
    gpu = _tool()
    items = gpu.plan(gpu.build_parser().parse_args([]))
    assert [i["kind"] for i in items[:2]] == ["check", "conv"]
    runs = items[2:]
    # 5 workloads x 2 precisions x (JAX direct, JAX phase, torch backend + reference).
    assert len(runs) == 30
    assert [i["precision"] for i in runs] == ["mixed_bfloat16"] * 15 + ["float32"] * 15
    assert [(i["kind"], i.get("strategy")) for i in runs[:3]] == [
        ("keras", "direct"), ("keras", "phase"), ("torch", None)]
    assert {i["workload"]["variant"] for i in runs} == {"drn_c_26", "drn_d_22", "drn_d_105"}
    quick = gpu.plan(gpu.build_parser().parse_args(["--quick"]))
    assert len(quick) == 2 + 2 * 3 and {i.get("precision") for i in quick[2:]} == {
        "mixed_bfloat16"}


def test_table_gives_ratios_to_the_reference_and_marks_missing_sides():
    gpu = _tool()
    workload = {"variant": "drn_d_22", "task": "segmentation", "height": 896, "width": 896,
                "batch": 8, "mode": "training"}

    def side(rate, mb):
        return {"images_per_s": rate, "peak_memory_mb": mb}

    records = [
        {"item": {"kind": "keras", "strategy": "direct", "workload": workload,
                  "precision": "float32"}, "result": {"keras_drn": side(50.0, 9000)}},
        {"item": {"kind": "keras", "strategy": "phase", "workload": workload,
                  "precision": "float32"}, "result": {"error": "timed out after 150 s"}},
        {"item": {"kind": "torch", "workload": workload, "precision": "float32"},
         "result": {"keras_drn": side(60.0, 8000), "reference": side(40.0, 7000)}},
    ]
    row = gpu.format_tables(records).splitlines()[-1]
    assert row.startswith("drn_d_22 seg 896x896 b8 train")
    cells = row.split()
    assert "(1.25x)" in cells and "(1.50x)" in cells and "(1.00x)" in cells
    assert cells.count("-") == 1  # the phase side that timed out


def test_stand_in_reference_builds_the_variants_with_out_dim():
    pytest.importorskip("torch")
    gpu = _tool()
    drn, segment, source = gpu._reference(None)
    assert segment is None and "stand-in" in source
    assert drn.drn_d_105(pretrained=False, num_classes=19).out_dim == 512
    assert drn.drn_a_50(pretrained=False).out_dim == 2048
