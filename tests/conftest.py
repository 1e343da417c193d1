import keras
import pytest

# KERAS_DRN_CI_LEDGER=DIR (.ci/run): record the tests collected and run, for
# .ci/check_every_test_ran.py.
from tests.ci_ledger import pytest_configure  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from seed 0, float32 and an empty Keras name scope."""
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


# CI installs the whole test extra, so there a test skipped for a package it could not import
# is a broken install, not an optional feature: with KERAS_DRN_STRICT_SKIPS=1 (.ci/run) such
# skips fail, during collection (module-level importorskip) and in tests alike.
def _missing_package(report):
    import os

    return (report.skipped and os.environ.get("KERAS_DRN_STRICT_SKIPS") == "1"
            and "could not import" in str(report.longrepr))


def _fail(report):
    report.outcome = "failed"
    report.longrepr = (f"{report.longrepr}\nA package of the test extra is missing: pip "
                       "install -e '.[test]' (KERAS_DRN_STRICT_SKIPS=1 turns this skip into "
                       "a failure).")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _missing_package(report):
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if _missing_package(report):
        _fail(report)


# Tests marked tensorflow_only assert what the backend running them cannot change: the
# properties of an artifact the TensorFlow export subprocess writes whichever backend built
# the model, or the members of a model matrix beyond the one per architecture family that
# keeps each backend's path covered. CI runs them in its TensorFlow phase; on JAX and
# PyTorch they are deselected (counted as such in the summary), not skipped.
def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    deselected = [item for item in items if item.get_closest_marker("tensorflow_only")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("tensorflow_only")]
