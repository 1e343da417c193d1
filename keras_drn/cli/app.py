"""The ``keras-drn`` command: the parser of every command and the dispatch. Each command is a
module of ``keras_drn.cli`` (``command`` adds its parser, ``arguments`` its arguments, ``run``
runs it): ``models`` lists the variants, ``weights`` lists and downloads the ImageNet files,
``convert`` converts a PyTorch checkpoint, ``export`` writes verified SavedModel/LiteRT/ONNX
files, ``train``/``evaluate``/``predict`` run the segmentation and classification workflows,
``ensemble`` and ``threshold`` predict with and tune the folds of a k-fold run, ``upgrade``
converts old run folders, ``demo`` trains a segmenter on the embedded synthetic scenes.

Parsing imports no Keras: only the arguments of the command named on the command line are
built (``keras-drn --help`` builds none), and Keras is imported after parsing
(``keras_drn._load``). A user error (a ValueError, such as keras_drn's RunError, or a missing
or existing file) is one line on stderr, ``keras-drn COMMAND: error: ...``, exit status 2,
with the Python arguments the library names rewritten as the flags of the command
(``crop_size=`` is ``--crop-size``); ``--verbose`` shows its traceback instead. Other
exceptions are bugs: their traceback is shown.
"""

import argparse
import importlib
import re
import sys

COMMANDS = ("models", "weights", "convert", "export", "train", "evaluate", "predict",
            "ensemble", "threshold", "upgrade", "demo")
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError,
               NotADirectoryError, PermissionError)


def module(name):
    """The module of command ``name``."""
    return importlib.import_module(f"keras_drn.cli.{name}")


def _named(argv):
    """The command ``argv`` names (its first word that is one), or ``None``."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(argv=None):
    """The parser; with ``argv``, only the arguments of the command it names are built (all of
    them without ``argv``)."""
    parser = argparse.ArgumentParser(
        prog="keras-drn",
        description="Dilated Residual Networks for Keras 3. Set KERAS_BACKEND to tensorflow, "
        "jax or torch to choose the backend.",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines and the traceback of an error "
                        "(quiet by default)")
    commands = parser.add_subparsers(dest="command", required=True)
    named = None if argv is None else _named(argv)
    for name in COMMANDS:
        command = module(name)
        sub = command.command(commands)
        if argv is None or name == named:
            command.arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def _subparser(parser, name):
    return next(action.choices[name] for action in parser._actions
                if isinstance(action, argparse._SubParsersAction))


def python_names(parser, command):
    """``{Python argument name: action}`` of ``command``'s flags: each action's dest, and
    the record fields a flag stands for (``keras_drn.cli.train.python_names``)."""
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    by_flag = {action.option_strings[0]: action for action in actions.values()}
    aliases = getattr(module(command), "python_names", dict)()
    for name, flag in aliases.items():
        if flag in by_flag:
            actions.setdefault(name, by_flag[flag])
    return actions


_ARGUMENT = re.compile(r"(?<![\w./-])([A-Za-z_]\w*)(=('[^']*'|\"[^\"]*\"|[^\s,;:()]+?)?)?"
                       r"(?=[\s,;:()]|\.(?:\s|$)|$)")


def flags_of(message, actions):
    """``message`` with the Python arguments it names written as the flags of ``actions``
    (``python_names``): ``batch_size=1`` -> ``--batch-size 1``, ``crop_size=`` and a bare
    ``crop_size`` -> ``--crop-size``, ``overwrite=True`` -> ``--overwrite``, ``flip=False``
    -> ``--no-flip``. A bare name is rewritten only when it has an underscore (a word such
    as "data" may be prose)."""
    def flag(match):
        name, assigned, value = match.group(1), match.group(2), match.group(3)
        action = actions.get(name)
        if action is None or (assigned is None and "_" not in name):
            return match.group(0)
        option = action.option_strings[0]
        if action.nargs == 0:  # a switch: the value that turning it on gives
            return option if value in (None, repr(action.const)) else match.group(0)
        if value is None:
            return option
        return f"{option} {value.strip(chr(39) + chr(34))}"

    text = _ARGUMENT.sub(flag, message)
    return re.sub(r"(--[\w-]+(?: [^\s()]+)?) \(\1\)", r"\1", text)  # "--x (--x)" once


def main(argv=None):
    """Parses ``argv`` (default: the command line), then imports the library and runs the
    command; returns its exit status. A user error exits with status 2 and one line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    import keras_drn

    keras_drn._load()  # the backend, then the library (its serialisables registered)
    try:
        return args.run(args)
    except USER_ERRORS as error:
        if args.verbose:
            raise
        command = _subparser(parser, args.command)
        message = flags_of(" ".join(str(error).split()) or type(error).__name__,
                           python_names(command, args.command))
        command.exit(2, f"{command.prog}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
