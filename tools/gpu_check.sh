#!/usr/bin/env bash
# The GPU check of issue 17, for the GPU machine (one H200, PyTorch 2.11, JAX 0.11, no
# TensorFlow, no network). Run from the repository root with the wheel folder .whl carried
# (made here by tools/gpu_wheels.sh) and, if available, a checkout of github.com/fyu/drn in
# .gpu/drn (both ignored by git):
#
#   bash tools/gpu_check.sh              # full run, about 8 minutes (--budget 450 s of items)
#   bash tools/gpu_check.sh --quick      # short rerun: bfloat16, two workloads
#   bash tools/gpu_check.sh --tiny       # here, on the CPU: the whole plan at toy sizes
#
# From a session with the device tool: run `bash tools/gpu_wheels.sh` here first, copy a
# checkout of github.com/fyu/drn to .gpu/drn if one can be had, then one run with
# command "bash tools/gpu_check.sh", carry [".whl", ".gpu"], timeout_s 560; a rerun at once
# with "bash tools/gpu_check.sh --quick" if needed. Plan the run before starting the machine.
#
# Writes $OUT/gpu_check.json (results so far after every item) and prints the table; exits 1
# if phase != direct on the device or an item failed. Extra arguments go to
# tools/gpu_benchmark.py (--budget SECONDS, --reference DIR, --out DIR).
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
PYTHON=${PYTHON:-python3}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
KERAS_BACKEND=jax "$PYTHON" -c "import sys; sys.modules['tensorflow'] = None; import keras, jax, torch; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices(), 'torch', torch.__version__, torch.cuda.is_available())" || exit 1
exec "$PYTHON" tools/gpu_benchmark.py --out "${OUT:-gpu_check_out}" "$@"
