"""keras-drn convert."""

import pytest

from keras_drn.cli import app as cli


def test_convert_subcommand_and_tool_exist(capsys):
    with pytest.raises(SystemExit):
        cli.main(["convert", "--help"])
    out = capsys.readouterr().out
    assert "--variant" in out and "destination" in out
    import pathlib
    import subprocess
    import sys

    tool = pathlib.Path(__file__).resolve().parents[2] / "tools" / "convert_weights.py"
    result = subprocess.run([sys.executable, str(tool), "--help"], capture_output=True,
                            text=True, check=True)
    assert "--variant" in result.stdout
