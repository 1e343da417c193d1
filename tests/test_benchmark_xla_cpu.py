import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.backend_independent  # JAX and PyTorch directly, no Keras op


def test_reports_jax_against_pytorch_per_flag_and_names_a_bad_flag():
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, "tools/benchmark_xla_cpu.py", "--flag=", "--flag=--xla_cpu_no_such=1",
         "--rounds", "1", "--steps", "1"], capture_output=True, text=True, check=True)
    rows = [line for line in done.stdout.splitlines() if line.startswith("(none)")]
    assert [row.split()[1] for row in rows] == ["float32", "bfloat16"]
    for row in rows:
        cells = re.findall(r"(\d+) \|\s+(\d+)\s+([\d.]+)x", row)
        assert len(cells) == 3  # conv d1, conv d4, matmul
        for jax_rate, torch_rate, ratio in cells:
            assert float(ratio) == pytest.approx(int(jax_rate) / int(torch_rate), abs=0.02)
    assert re.search(r"--xla_cpu_no_such=1 +failed: .*Unknown flag", done.stdout)
