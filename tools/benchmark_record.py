"""The one format of measured numbers: a JSON file per table under ``docs/benchmarks/``.

Every ``tools/benchmark*.py`` writes it with ``--output FILE``; ``tools/speed_page.py`` renders
all such files into ``docs/speed.md``. A file is one table measured on one machine::

    {
      "title": "CPU, TensorFlow backend vs the reference",
      "machine": "2 CPU cores of an Intel Xeon ...",
      "cpu_flags": ["amx_bf16", "avx512f"],
      "versions": {"keras": "3.15.1", "tensorflow": "2.21.0"},
      "date": "2026-12-07",                         # null where the measurement did not say
      "command": "python tools/benchmark.py ...",   # null where none was recorded
      "description": "what was measured and how",
      "columns": [{"name": "workload", "align": "left"},
                  {"name": "ratio", "align": "right", "format": "{:.2f}x"}],
      "rows": [["DRN-C-26 classifier ...", 1.04]],
      "notes": ["a sentence about the numbers", ...]
    }

``format`` is a Python format string applied to numeric cells (strings are shown as they are,
``null`` as ``-``).
"""

import datetime
import json
import os
import platform
import sys
from importlib import metadata

KEYS = ("title", "machine", "cpu_flags", "versions", "date", "command", "description",
        "columns", "rows", "notes")
# The /proc/cpuinfo flags that decide which kernels a CPU gets (oneDNN's AVX-512 and AMX
# paths, mixed_precision="auto").
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8",
                  "amx_tile")
PACKAGES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy",
            "ai-edge-litert", "onnxruntime", "tf2onnx")


def cpu_info():
    """(machine description, relevant CPU flags) of this machine."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} CPU cores of {model}", sorted(flags.intersection(RELEVANT_FLAGS))


def versions():
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def record(title, description, columns, rows, notes=(), command=None):
    """A record of this machine, today (UTC), with the command line that ran."""
    machine, flags = cpu_info()
    return {
        "title": title,
        "machine": machine,
        "cpu_flags": flags,
        "versions": versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "command": command or " ".join(["python", *sys.argv]),
        "description": description,
        "columns": [dict(c) for c in columns],
        "rows": [list(r) for r in rows],
        "notes": list(notes),
    }


def validate(data, name="record"):
    """Raises ValueError naming what is wrong with a record."""
    if not isinstance(data, dict) or set(data) != set(KEYS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{name}: expected the keys {list(KEYS)}, got {got}")
    for key in ("title", "machine", "description"):
        if not isinstance(data[key], str) or not data[key]:
            raise ValueError(f"{name}: {key!r} must be a non-empty string")
    if data["date"] is not None:
        datetime.date.fromisoformat(data["date"])
    names = [c.get("name") for c in data["columns"]]
    for column in data["columns"]:
        if column.get("align") not in ("left", "right") or set(column) - {"name", "align",
                                                                           "format"}:
            raise ValueError(f"{name}: bad column {column!r} (name, align left|right, "
                             "optional format)")
    for row in data["rows"]:
        if len(row) != len(names):
            raise ValueError(f"{name}: row {row!r} has {len(row)} cells for the columns "
                             f"{names}")
    return data


def write(path, data):
    """Writes a validated record atomically (a partial file is never left at ``path``)."""
    validate(data, path)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
