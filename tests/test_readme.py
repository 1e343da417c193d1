"""The README stays true: its test command is what CI runs; the variant table (docs/variants.md)
matches the models."""

import pathlib
import re

from tests.published import PARAMETERS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines()
                   if line.startswith("KERAS_BACKEND=tensorflow python -m pytest"))
    assert command in (ROOT / ".ci" / "run").read_text()
    for backend in ("tensorflow", "jax", "torch"):
        assert f"KERAS_BACKEND={backend}" in command


def test_variant_table_matches_parameter_counts():
    variants = (ROOT / "docs" / "variants.md").read_text()
    rows = re.findall(r"^\| DRN-([ACD])-(\d+) \|.*\| ([\d,]+) \|$", variants, re.MULTILINE)
    table = {f"drn_{arch.lower()}_{depth}": int(count.replace(",", ""))
             for arch, depth, count in rows}
    assert table == PARAMETERS
