"""The package's layout holds: the library (layers, models, weights, data, export, evaluation,
losses, metrics and the shared top-level modules) never imports the application
(``keras_drn.workflows``, ``keras_drn.cli``); at most 8 modules at ``keras_drn/``'s top level;
every module that moved is still importable under its old name, as the same module."""

import ast
import importlib
import pathlib

import pytest

import keras_drn

PACKAGE = pathlib.Path(keras_drn.__file__).resolve().parent
APPLICATION = ("keras_drn.workflows", "keras_drn.cli")
LIBRARY_PACKAGES = ("layers", "models", "weights", "data", "export", "evaluation")


def _imports(path):
    """The absolute module names ``path`` imports (at any depth: imports inside functions too)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def _library_files():
    yield from (path for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    for package in LIBRARY_PACKAGES:
        for path in (PACKAGE / package).rglob("*.py"):
            if path.name != "__main__.py":  # a command's entry point, not imported by the library
                yield path


def _application_name(module):
    module = keras_drn.MOVED.get(module, module)
    return module.startswith(APPLICATION) or any(
        module.startswith(old + ".") or module == old
        for old, new in keras_drn.MOVED.items() if new.startswith(APPLICATION))


def test_the_library_never_imports_the_application():
    upward = sorted(
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in _library_files() for name in set(_imports(path))
        if _application_name(name))
    assert not upward, "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from keras_drn.runs import RunFolder\n"
                    "    from keras_drn import cli\n")
    assert [name for name in _imports(path) if _application_name(name)] == [
        "keras_drn.runs", "keras_drn.runs.RunFolder", "keras_drn.cli"]


def test_at_most_eight_top_level_modules():
    modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(modules) <= 8, modules


@pytest.mark.parametrize("old", sorted(keras_drn.MOVED))
def test_a_moved_module_imports_under_its_old_name(old):
    module = importlib.import_module(old)
    assert module is importlib.import_module(keras_drn.MOVED[old])
    assert module.__spec__.name == keras_drn.MOVED[old]  # it keeps its own identity
    parent, _, name = old.rpartition(".")
    assert getattr(importlib.import_module(parent), name) is module
