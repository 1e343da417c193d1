"""CI runs every test: tests/ci_ledger.py records what each phase collected and ran, and
.ci/check_every_test_ran.py (called by .ci/run after the three phases) fails naming any
collected test that ran in no phase."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECKER = ROOT / ".ci" / "check_every_test_ran.py"
pytestmark = pytest.mark.backend_independent  # files and subprocesses, no Keras op


def _check(folder):
    return subprocess.run([sys.executable, str(CHECKER), str(folder)], capture_output=True,
                          text=True, timeout=120)


def _write(folder, name, nodeids):
    (folder / name).write_text("".join(f"{n}\n" for n in nodeids))


def test_checker_names_a_test_that_ran_in_no_phase(tmp_path):
    tests = ["tests/a.py::test_everywhere", "tests/a.py::test_tf_only",
             "tests/b.py::test_skipped[x]"]
    for phase in ("tensorflow", "jax"):
        _write(tmp_path, f"{phase}.collected.gw0.11.txt", tests)
    _write(tmp_path, "tensorflow.ran.gw0.11.txt", tests[:1])
    _write(tmp_path, "tensorflow.ran.gw1.12.txt", tests[1:2])
    _write(tmp_path, "jax.ran.gw0.13.txt", tests[:1])
    result = _check(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("1 of 3 collected tests ran in no CI phase (jax, tensorflow)" in result.stderr)
    assert "  tests/b.py::test_skipped[x] (collected on jax, tensorflow)" in result.stderr
    assert "test_tf_only" not in result.stderr and "test_everywhere" not in result.stderr

    _write(tmp_path, "jax.ran.gw1.14.txt", tests[2:])  # the last one runs in one phase
    result = _check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every one of the 3 collected tests ran" in result.stdout


def test_checker_fails_on_an_empty_ledger(tmp_path):
    result = _check(tmp_path)
    assert result.returncode == 1 and "records no collected test" in result.stderr


def test_ledger_records_collected_tests_before_deselection_and_only_those_that_ran(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    (suite / "test_fake.py").write_text(textwrap.dedent("""
        import pytest

        def test_runs():
            pass

        def test_fails():
            assert False

        def test_skipped():
            pytest.skip("not here")

        @pytest.mark.skipif(True, reason="never")
        def test_skipif():
            pass

        @pytest.mark.slow
        def test_deselected():
            pass

        @pytest.mark.xfail(strict=True)
        def test_expected_failure():
            assert False
        """))
    ledger = tmp_path / "ledger"
    env = {**os.environ, "KERAS_DRN_CI_LEDGER": str(ledger), "KERAS_BACKEND": "jax",
           "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.ci_ledger", "-p", "no:cacheprovider",
         "-m", "not slow", "-c", str(suite / "pytest.ini"), "--rootdir", str(suite),
         str(suite)], cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    assert "1 failed, 1 passed, 2 skipped, 1 deselected, 1 xfailed" in result.stdout, (
        result.stdout + result.stderr)
    files = sorted(path.name.split(".")[:3] for path in ledger.iterdir())
    assert files == [["jax", "collected", "main"], ["jax", "ran", "main"]]
    prefix = "test_fake.py::test_"
    collected = next(ledger.glob("jax.collected.*")).read_text().split()
    assert sorted(collected) == [prefix + name for name in (
        "deselected", "expected_failure", "fails", "runs", "skipif", "skipped")]
    ran = next(ledger.glob("jax.ran.*")).read_text().split()
    assert sorted(ran) == [prefix + name for name in ("expected_failure", "fails", "runs")]
    result = _check(ledger)
    assert result.returncode == 1
    assert [line.split()[0] for line in result.stderr.splitlines()[1:]] == [
        prefix + name for name in ("deselected", "skipif", "skipped")]


def test_ci_run_records_every_phase_and_then_checks_the_ledger():
    script = (ROOT / ".ci" / "run").read_text()
    ledger = script.index("export KERAS_DRN_CI_LEDGER=")
    phases = script.index("KERAS_BACKEND=tensorflow python -m pytest")
    check = script.index("python .ci/check_every_test_ran.py \"$KERAS_DRN_CI_LEDGER\"")
    assert ledger < phases < check
