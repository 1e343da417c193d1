#!/usr/bin/env bash
# Builds .whl/ here (a machine that reaches PyPI): the wheels tools/gpu_check.sh installs on
# the GPU machine, which has PyTorch, JAX, numpy, h5py, ml-dtypes, rich, absl-py, packaging,
# typing-extensions and pillow but not Keras. Keras 3.15.1 needs, beyond those, namex and
# optree (compiled: the CPython 3.12 manylinux build). The folder is ignored by git (added to
# .git/info/exclude, as is .gpu/, where a checkout of github.com/fyu/drn can go as
# .gpu/drn) and never committed; name both in the device run's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for path in /.whl/ /.gpu/; do
    grep -qx "$path" "$exclude" 2>/dev/null || echo "$path" >>"$exclude"
done
rm -rf .whl
"${PYTHON:-python3}" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
ls -l .whl
