"""Pretrained weights offline for the model tests: a random DRN-D-22 checkpoint in the
reference's layout, put in the weights table with its real hash and found in
``KERAS_DRN_WEIGHTS_DIR`` (no network; the official host name does not resolve)."""

import dataclasses
import hashlib
import pathlib

import pytest

from keras_drn.weights import pretrained, sources


@pytest.fixture(scope="module")
def _drn_d_22_checkpoint(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.weights.torch_reference import reference_net, save

    folder = tmp_path_factory.mktemp("weights")
    path = pathlib.Path(save(reference_net("drn_d_22").state_dict(), folder / "drn_d_22.pth"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    name = f"drn_d_22-{digest}.pth"
    path.rename(folder / name)
    row = sources.WeightsFile("drn_d_22", "official", name, f"http://weights-host.invalid/{name}",
                              "reference", sha256_prefix=digest)
    return folder, row


@pytest.fixture
def imagenet_weights(_drn_d_22_checkpoint, tmp_path, monkeypatch):
    """``weights="imagenet"`` of DRN-D-22 loads a local random checkpoint. Call the fixture's
    value with ``mean``/``std`` to give the table's row other statistics; returns the row."""
    folder, row = _drn_d_22_checkpoint
    monkeypatch.setenv(pretrained.DIR_ENV, str(folder))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def table(**statistics):
        entry = dataclasses.replace(row, **statistics)
        monkeypatch.setattr(sources, "FILES", (entry,))
        return entry

    table()
    return table
