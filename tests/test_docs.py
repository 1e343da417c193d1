"""The documentation runs as written: every fenced code block of README.md, CONTRIBUTING.md and
docs/*.md.

``python`` blocks run in this process (in a fresh namespace), ``bash``/``sh``/``console``
blocks in ``bash -euo pipefail``, all of one page in order in one temporary folder holding
small data this module makes: ``imgs/`` + ``masks/`` (an image/mask folder pair),
``seg/{train,val}/{images,masks}``, ``train/<class>/`` and ``test/`` (classification),
``salt/`` (a Kaggle folder: ``train.csv`` of run-length-encoded masks + ``images/``),
``test_images/`` and ``photo.jpg``. A block that cannot run here carries
``<!-- not run: REASON -->`` on the line before it; other languages are text (``text``,
``json``, ``yaml``, ``toml``).

Slow (minutes of training and export on one core), so CI runs it in its TensorFlow phase,
which is also the backend the ``keras-drn`` commands get here.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "bash", "sh", "console"}
TEXT = {"text", "json", "yaml", "toml"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run:(.*?)-->\s*$")
# Each skip is a documented command nobody checks: keep them few.
MAX_NOT_RUN = 12


def blocks(page):
    """(language, code, skip reason or None, line number) of every fenced block of ``page``."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        found.append((match.group(1).strip(), match.group(2),
                      marker.group(1).strip() if marker else None, line))
    return found


def problems_and_skips(pages):
    """(problems, skipped blocks) of the fences and not-run markers of ``pages``."""
    skips, problems = [], []
    for page in pages:
        name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
        for language, _, reason, line in blocks(page):
            if language not in RUN | TEXT:
                problems.append(f"{name}:{line}: fence language {language!r} is neither run "
                                f"({sorted(RUN)}) nor text ({sorted(TEXT)})")
            if reason is not None:
                if language not in RUN:
                    problems.append(f"{name}:{line}: a not-run marker before a {language} "
                                    "block, which never runs")
                elif not reason:
                    problems.append(f"{name}:{line}: 'not run' without a reason")
                skips.append(f"{name}:{line}")
        markers = len(re.findall(r"^<!--\s*not run:", page.read_text(), re.MULTILINE))
        marked = sum(reason is not None for *_, reason, _ in blocks(page))
        if markers != marked:
            problems.append(f"{name}: {markers - marked} not-run marker(s) not right before a "
                            "code block")
    return problems, skips


def test_every_block_is_run_or_says_why_not():
    problems, skips = problems_and_skips(PAGES)
    assert not problems, "\n".join(problems)
    assert len(skips) <= MAX_NOT_RUN, f"{len(skips)} blocks not run: {skips}"


def test_a_skip_without_a_reason_or_an_unknown_fence_is_a_problem(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- not run: -->\n```bash\nfalse\n```\n\n```shell\nfalse\n```\n\n"
                    "<!-- not run: stray -->\n\ntext\n")
    problems, skips = problems_and_skips([page])
    assert skips == ["page.md:2"]
    assert problems == ["page.md:2: 'not run' without a reason",
                        "page.md:6: fence language 'shell' is neither run (['bash', 'console', "
                        "'python', 'sh']) nor text (['json', 'text', 'toml', 'yaml'])",
                        "page.md: 1 not-run marker(s) not right before a code block"]


def _png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_data(folder):
    """The small data the documented commands read (see the module docstring)."""
    from keras_drn.data.rle import rle_encode
    from keras_drn.data.synthetic import make_scenes

    images, masks, labels = make_scenes(24, size=32, seed=0)
    images = (images * 255).astype("uint8")
    masks = np.minimum(masks, 2)  # 3 classes: background, disk, line (squares count as lines)
    for i in range(8):
        _png(folder / "imgs" / f"{i}.png", images[i])
        _png(folder / "masks" / f"{i}.png", masks[i])
        split = "train" if i < 6 else "val"
        _png(folder / "seg" / split / "images" / f"{i}.png", images[i])
        _png(folder / "seg" / split / "masks" / f"{i}.png", masks[i])
    for i in range(24):
        _png(folder / "train" / ("disk", "line", "square")[labels[i]] / f"{i}.png", images[i])
    rows = ["ImageId,EncodedPixels"]
    for i in range(12):
        _png(folder / "salt" / "images" / f"s{i}.png", images[i])
        rows.append(f"s{i},{rle_encode((masks[i] == 1).astype('uint8'))}")
    (folder / "salt" / "train.csv").write_text("\n".join(rows) + "\n")
    for i in range(2):
        _png(folder / "test" / f"t{i}.png", images[20 + i])
        _png(folder / "test_images" / f"t{i}.png", images[20 + i])
    from PIL import Image

    Image.fromarray(images[23]).save(folder / "photo.jpg")


def _bash(code):
    if code.lstrip().startswith("$ "):  # console: the commands are the lines after "$ "
        code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ "))
    return code


def run_page(page, folder):
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
           "TF_CPP_MIN_LOG_LEVEL": "2",
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("KERAS_DRN_CI_LEDGER", None)
    ran = 0
    for language, code, reason, line in blocks(page):
        if language not in RUN or reason is not None:
            continue
        where = f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name}:{line}"
        if language == "python":
            try:
                exec(compile(code, where, "exec"), {"__name__": "__main__"})
            except BaseException as error:
                raise AssertionError(f"{where}: the python block fails as written: "
                                     f"{type(error).__name__}: {error}") from error
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", _bash(code)], cwd=folder,
                                  env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, (f"{where}: the {language} block fails as written "
                                          f"(exit {done.returncode}):\n{code}\n"
                                          f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        ran += 1
    return ran


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs_as_written(page, tmp_path, monkeypatch):
    make_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    run_page(page, tmp_path)


@pytest.mark.slow
def test_a_broken_command_fails_the_page(tmp_path, monkeypatch):
    """The runner fails on a documented command that fails (a misspelt flag, a wrong name)."""
    page = tmp_path / "page.md"
    page.write_text("Fine:\n\n```bash\nkeras-drn models\n```\n\nBroken:\n\n```bash\n"
                    "keras-drn models --no-such-flag\n```\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match=r"page.md:9: the bash block fails as written"):
        run_page(page, tmp_path)
    page.write_text("```python\nimport keras_drn\nkeras_drn.get_model('drn_x_1')\n```\n")
    with pytest.raises(AssertionError, match="python block fails as written"):
        run_page(page, tmp_path)
    page.write_text("<!-- not run: shows a failure -->\n```bash\nfalse\n```\n")
    assert run_page(page, tmp_path) == 0


@pytest.mark.backend_independent
def test_speed_page_is_generated_from_the_data():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import speed_page
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert (ROOT / "docs" / "speed.md").read_text() == speed_page.render(), (
        "docs/speed.md differs from docs/benchmarks/*.json: run python tools/speed_page.py")


@pytest.mark.backend_independent
def test_benchmark_records_are_complete_and_render(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import benchmark_record
        import speed_page
    finally:
        sys.path.remove(str(ROOT / "tools"))
    files = sorted((ROOT / "docs" / "benchmarks").glob("*.json"))
    assert files
    for path in files:
        data = benchmark_record.validate(json.loads(path.read_text()), path.name)
        assert data["machine"] and data["rows"], path.name
    written = benchmark_record.record(
        "t", "d", [{"name": "a", "align": "left"}, {"name": "b", "align": "right",
                                                     "format": "{:.2f}x"}], [["x", 1.234]])
    assert written["date"] and written["versions"]["python"] and written["machine"]
    benchmark_record.write(tmp_path / "t.json", written)
    assert "| x | 1.23x |" in speed_page.render(tmp_path)
    broken = dict(written, rows=[["only one cell"]])
    with pytest.raises(ValueError, match="has 1 cells"):
        benchmark_record.write(tmp_path / "u.json", broken)
    assert not (tmp_path / "u.json").exists()


@pytest.mark.backend_independent
def test_guides_quote_no_dated_measurement():
    """Dated numbers live in docs/benchmarks/ (and docs/speed.md, made from them)."""
    dated = re.compile(r"20\d\d-\d\d-\d\d")
    found = [f"{page.relative_to(ROOT)}:{i}: {line.strip()}"
             for page in PAGES if page.name != "speed.md"
             for i, line in enumerate(page.read_text().splitlines(), 1) if dated.search(line)]
    assert not found, "\n".join(found)


@pytest.mark.backend_independent
def test_one_version_number():
    """pyproject reads the version from keras_drn.__version__ (statically: a literal), the
    installed metadata and the site (tools/mkdocs_hooks.py) show that number."""
    import ast
    import importlib.metadata
    import tomllib

    import keras_drn

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "keras_drn.__version__"}
    tree = ast.parse((ROOT / "keras_drn" / "__init__.py").read_text())
    literal = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
               and any(getattr(t, "id", None) == "__version__" for t in node.targets)]
    assert literal == [keras_drn.__version__]
    assert importlib.metadata.version("keras-drn") == keras_drn.__version__
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import mkdocs_hooks
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert mkdocs_hooks.version() == keras_drn.__version__
    assert "{{ version }}" in (ROOT / "docs" / "index.md").read_text()


def _tool(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rendered(path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import benchmark_record
        import speed_page
    finally:
        sys.path.remove(str(ROOT / "tools"))
    data = benchmark_record.validate(json.loads(path.read_text()), path.name)
    assert data["date"] and data["machine"] and data["versions"]["python"]
    return speed_page.section(path.name, data)


@pytest.mark.backend_independent
def test_every_benchmark_tool_writes_the_record_format(tmp_path, monkeypatch):
    """Each tools/benchmark*.py --output writes what tools/speed_page.py renders, from the
    results it measured (here made up: the measuring is tested in tests/test_benchmark.py)."""
    import argparse

    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))
    bench = _tool("benchmark")
    ours = {"images_per_s": 10.0, "peak_memory_mb": 300.0}
    result = {"variant": "drn_d_22", "task": "segmentation", "height": 32, "width": 48,
              "batch": 1, "mode": "inference", "precision": "float32", "jit": "auto",
              "keras_drn": ours, "reference": {"images_per_s": 8.0}, "ratio": 1.25,
              "fold_batch_norm_ratio": 1.04}
    bench.write_record(tmp_path / "b.json", [result], steps=5, rounds=3)
    assert "| drn_d_22 seg 32x48 b1 inference | float32 | auto | 10.00 | 8.00 | 1.25x | 300 " \
           "| 1.04x |" in _rendered(tmp_path / "b.json")

    export = _tool("benchmark_export")
    export.write_record(tmp_path / "e.json", [("Keras (tensorflow)", "float32", 2**21, 10.0,
                                               "reference"),
                                              ("litert", "int8", 2**19, 2.5, "agreement 95%")],
                        "d")
    assert "| litert | int8 | 0.5 | 0.25x | 2.5 | 0.25x | agreement 95% |" in _rendered(
        tmp_path / "e.json")

    blur = _tool("benchmark_blurpool")
    blur.write_record(tmp_path / "p.json", {
        "backend": "jax", "shape": [8, 112, 112, 64], "kernel_size": 3, "groups": 8,
        "strides": 2, "jit": True, "strided_s": 0.2, "full_then_subsample_s": 1.0,
        "speedup": 5.0, "max_output_difference": 0.0, "max_gradient_difference": 1e-4},
        steps=5, rounds=7)
    assert "| jax | 200.0 | 1000.0 | 5.00x | 0.0e+00 | 1.0e-04 |" in _rendered(tmp_path / "p.json")

    pipe = _tool("benchmark_pipeline")
    pipe.write_record(tmp_path / "i.json", {
        "backend": "jax", "variant": "drn_d_22", "batch": 4, "crop": 256,
        "pipeline_step_s": 3.071, "in_memory_step_s": 3.077, "overhead": -0.002, "rounds": 3,
        "steps": 10}, 64, 320)
    assert "| tf.data pipeline | 3071 |" in _rendered(tmp_path / "i.json")

    procs = _tool("benchmark_processes")
    args = argparse.Namespace(variant="drn_d_22", size=32, batch=4, warmup=2, steps=5)
    procs.write_record(tmp_path / "m.json", args, 2, {1: 32.6, 2: 4.06})
    assert "| 5 | 32.60 | 4.06 | 0.12 |" in _rendered(tmp_path / "m.json")

    xla = _tool("benchmark_xla_cpu")
    rows = xla.record_rows("", {"float32": {"conv d1": [247.0, 332.0], "conv d4": [1.0, 2.0],
                                            "matmul": [3.0, 4.0]}})
    xla.write_record(tmp_path / "x.json", rows, 3, 3)
    assert "| (none) | float32 | conv d1 | 247 | 332 | 0.74x |" in _rendered(tmp_path / "x.json")
