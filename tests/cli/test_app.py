import pytest

from keras_drn.cli import app as cli


def _python(code, tmp_path, **env):
    import os
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items()
                   if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    environment.update(KERAS_HOME=str(tmp_path), **env)  # no keras.json there
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=300)


HIDE = """
import importlib.util
real = importlib.util.find_spec
hidden = {hidden}
importlib.util.find_spec = lambda name, *a, **k: None if name in hidden else real(name, *a, **k)
"""


def test_an_installed_backend_is_chosen_before_keras_is_imported(tmp_path):
    # Only jax "installed": Keras's default (tensorflow) would fail with ModuleNotFoundError.
    done = _python(HIDE.format(hidden={"tensorflow"}) + "import keras_drn.cli, keras\n"
                   "print('backend', keras.backend.backend())", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "backend jax" in done.stdout
    home = tmp_path / "fresh"  # Keras wrote keras.json into the first KERAS_HOME
    home.mkdir()
    nothing = _python(HIDE.format(hidden={"tensorflow", "jax", "torch"}) +
                      "import keras_drn.cli", home)
    assert nothing.returncode != 0
    assert "none is installed: pip install 'keras-drn[jax]'" in nothing.stderr
    assert nothing.stderr.count("\n") < 12  # a short message, not a long import traceback


def test_tensorflow_log_lines_are_quiet_unless_verbose(tmp_path):
    pytest.importorskip("tensorflow")
    import os
    import subprocess
    import sys

    command = os.path.join(os.path.dirname(sys.executable), "keras-drn")
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment["KERAS_BACKEND"] = "tensorflow"
    quiet = subprocess.run([command, "models"], capture_output=True, text=True,
                           env=environment, timeout=300)
    assert quiet.returncode == 0 and "drn_d_22" in quiet.stdout
    assert "oneDNN" not in quiet.stderr and "I0000" not in quiet.stderr, quiet.stderr
    verbose = subprocess.run([command, "--verbose", "models"], capture_output=True,
                             text=True, env=environment, timeout=300)
    assert verbose.returncode == 0 and "oneDNN" in verbose.stderr


def test_a_chosen_backend_that_is_not_installed_gets_its_pip_line(tmp_path):
    """KERAS_BACKEND=torch without torch: one line with the install command, not Keras's long
    ModuleNotFoundError; in the keras-drn command, no traceback at all."""
    for argv0, traceback in (("script.py", True), ("/usr/bin/keras-drn", False)):
        code = (HIDE.format(hidden={"torch"}) + f"import sys; sys.argv[0] = {argv0!r}\n"
                "import keras_drn.cli\n"  # the command imports Keras once it has parsed:
                "keras_drn.cli.main(['models'])\n")
        done = _python(code, tmp_path, KERAS_BACKEND="torch")
        assert done.returncode != 0
        assert ("the Keras backend is torch (KERAS_BACKEND), but torch is not installed: pip "
                "install 'keras-drn[torch]'") in done.stderr, done.stderr[-2000:]
        assert ("Traceback" in done.stderr) == traceback


BACKENDS = ("keras", "tensorflow", "jax", "torch")
PARSE_ONLY = """
import sys
sys.argv[0] = "keras-drn"
from keras_drn.cli import main
try:
    main({argv!r})
except SystemExit as exit:
    print("status", exit.code)
print("imported", sorted({{m.split(".")[0] for m in sys.modules}} & {backends!r}))
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], []])
def test_parsing_imports_no_keras(argv, tmp_path):
    """keras-drn --help, keras-drn train --help and keras-drn alone answer without importing
    Keras or a backend."""
    done = _python(PARSE_ONLY.format(argv=argv, backends=set(BACKENDS)), tmp_path,
                   KERAS_BACKEND="tensorflow")
    assert f"status {0 if argv else 2}" in done.stdout, done.stderr[-2000:]
    assert "imported []" in done.stdout, done.stdout
    assert "usage: keras-drn" in done.stdout + done.stderr


def test_a_command_imports_keras_after_parsing(tmp_path):
    # The same probe does see Keras once a command runs: the assertion above can fail.
    done = _python(PARSE_ONLY.format(argv=["models"], backends=set(BACKENDS)), tmp_path,
                   KERAS_BACKEND="tensorflow")
    assert "status" not in done.stdout and "drn_d_22" in done.stdout, done.stderr[-2000:]
    assert "'keras'" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize(("message", "expected"), [
    ("batch_size=1 exceeds the 0 examples.", "--batch-size 1 exceeds the 0 examples."),
    ("give crop_size to batch them (batch_size=8), or use batch_size=1.",
     "give --crop-size to batch them (--batch-size 8), or use --batch-size 1."),
    ("class_names= gives 3 names but num_classes=2: give one name per class.",
     "--class-names gives 3 names but --num-classes 2: give one name per class."),
    ("Use another --output-dir, or --overwrite (overwrite=True) to delete it.",
     "Use another --output-dir, or --overwrite to delete it."),
    ("resume it with mixed_precision='float32'.", "resume it with --mixed-precision float32."),
    ("flip=False here, image_size=16 there.", "--no-flip here, --size 16 there."),
    ("keep id_column= and data and /tmp/crop_size/x.", "keep id_column= and data and "
     "/tmp/crop_size/x."),
])
def test_python_arguments_become_the_flags_of_the_command(message, expected):
    parser = cli.build_parser(["train"])
    train = parser._subparsers._group_actions[0].choices["train"]
    assert cli.flags_of(message, cli.python_names(train, "train")) == expected


def test_user_errors_are_one_line_naming_the_flag_and_bugs_keep_their_traceback(
        capsys, tmp_path, monkeypatch):
    from tests.cli.helpers import refused

    missing = tmp_path / "nowhere" / "model.keras"
    with refused(capsys, f"^keras-drn evaluate: error: Expected an existing .keras model "
                 f"file; received '{missing}', which does not exist"):
        cli.main(["evaluate", str(missing)])
    with refused(capsys, "^keras-drn predict: error: Expected an existing .keras model file"):
        cli.main(["predict", str(missing), str(tmp_path / "photo.png")])
    with refused(capsys, "^keras-drn train: error: Unknown data 'nowhere'"):
        cli.main(["train", "--data", "nowhere", "--output-dir", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="Expected an existing .keras model file"):
        cli.main(["--verbose", "evaluate", str(missing)])  # the traceback, as asked

    from keras_drn.workflows import segmentation

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(segmentation, "evaluate", broken)
    (tmp_path / "model.keras").write_bytes(b"")
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["evaluate", str(tmp_path / "model.keras")])


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    assert "usage: keras-drn " + command in capsys.readouterr().out
