"""mkdocs hooks (mkdocs.yml ``hooks:``): the site shows ``keras_drn.__version__``, read from
the source without importing the package, and mkdocstrings imports keras_drn on TensorFlow."""

import ast
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def version():
    tree = ast.parse((ROOT / "keras_drn" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(target, "id", None) == "__version__" for target in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError("keras_drn/__init__.py assigns no __version__")


def on_startup(command, dirty):
    # Griffe falls back to importing a module it cannot read statically (the public names
    # keras_drn resolves on demand): Keras must find a backend without asking.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def on_config(config):
    config["site_name"] = f"keras_drn {version()}"
    config["extra"]["version"] = version()
    return config


def on_page_markdown(markdown, page, config, files):
    return markdown.replace("{{ version }}", version())
