"""What the tests of the ``keras-drn`` command share."""

import contextlib
import re

import pytest


@contextlib.contextmanager
def refused(capsys, pattern):
    """Asserts the block (a ``main`` call) ends as a user error does: exit status 2 and one
    line on stderr, ``keras-drn COMMAND: error: ...``, matching ``pattern``, no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        yield
    error = capsys.readouterr().err
    assert exit.value.code == 2, error
    assert error.count("\n") == 1 and error.startswith("keras-drn"), error
    assert ": error: " in error and "Traceback" not in error, error
    assert re.search(pattern, error), error
