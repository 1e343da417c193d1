"""keras-drn models."""

from keras_drn.cli import app as cli
from tests.published import DEPTHS, PARAMETERS


def test_models_lists_every_variant(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name, count in PARAMETERS.items():
        line = next(row for row in out.splitlines() if row.startswith(name + " "))
        assert f"{count:,}" in line and ",".join(map(str, DEPTHS[name])) in line
