"""A pytest plugin that records which tests CI collects and which it runs, so that
``.ci/check_every_test_ran.py`` can fail when a test runs in none of CI's phases (skipped
on every backend, or deselected by every phase's ``-m``).

With ``KERAS_DRN_CI_LEDGER=DIR`` set (``.ci/run`` sets it), each pytest process appends to
two files of DIR, named by phase (``KERAS_BACKEND``), kind, xdist worker and process id, one
node id a line:

- ``PHASE.collected.WORKER.PID.txt``: every collected test, before any deselection (``-m``,
  ``-k``, tests/conftest.py's ``tensorflow_only``);
- ``PHASE.ran.WORKER.PID.txt``: every test whose body ran (its call phase, not skipped; an
  expected failure, xfail, counts as run).

tests/conftest.py registers it; ``-p tests.ci_ledger`` does too (its own tests use that).
"""

import os
import pathlib

import pytest

VARIABLE = "KERAS_DRN_CI_LEDGER"
NAME = "keras_drn_ci_ledger"


class Ledger:
    def __init__(self, folder, config):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        phase = os.environ.get("KERAS_BACKEND") or "default"
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.stem = f"{phase}.{{}}.{worker}.{os.getpid()}.txt"
        # Under xdist the controller only relays its workers' reports: they record.
        self.records = hasattr(config, "workerinput") or config.getoption("dist", "no") == "no"

    def _append(self, kind, nodeids):
        with open(self.folder / self.stem.format(kind), "a") as stream:
            stream.writelines(f"{nodeid}\n" for nodeid in nodeids)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items):
        self._append("collected", [item.nodeid for item in items])  # before deselection
        yield

    def pytest_runtest_logreport(self, report):
        if (self.records and report.when == "call"
                and (not report.skipped or hasattr(report, "wasxfail"))):
            self._append("ran", [report.nodeid])


def pytest_configure(config):
    folder = os.environ.get(VARIABLE)
    if folder and not config.pluginmanager.has_plugin(NAME):
        config.pluginmanager.register(Ledger(folder, config), NAME)
