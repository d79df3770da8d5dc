#!/usr/bin/env bash
# Create/reuse the virtual environment, install hgq_chip with its dev extra (test tools, ruff and the
# rtl, qkeras and plot extras), run the tests.
# Extra arguments go to pytest (e.g. `bash ci/test.sh -m slow`).
# Backend switch: KERAS_BACKEND (default tensorflow, as tests/conftest.py sets it), e.g.
# `KERAS_BACKEND=jax bash ci/test.sh -m "keras_level and not slow"` runs the fast Keras-level
# tests under JAX (CI does). JAX runs with 64-bit types on (JAX_ENABLE_X64=1) unless told
# otherwise, so the float64 layers (ASQ/POST, BatchNorm folding) are tested, not refused.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" dev
cd "$ROOT"
export KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}"
if [ "$KERAS_BACKEND" = jax ]; then
    export JAX_ENABLE_X64="${JAX_ENABLE_X64:-1}"
fi
echo "[ci] Keras backend: $KERAS_BACKEND" >&2
set +e
# Most test time is g++ compiling HLS projects, one single-threaded compiler per test: run the
# tests in parallel workers, xdist's one per core up to 4 (each worker loads TensorFlow, ~1 GB).
# HGQ_CHIP_TEST_WORKERS sets the count instead; 0 runs everything in this process.
if [ -n "${HGQ_CHIP_TEST_WORKERS:-}" ]; then
    workers=(-n "$HGQ_CHIP_TEST_WORKERS")
else
    workers=(-n auto --maxprocesses 4)
fi
python -m pytest -q --durations=15 "${workers[@]}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "[ci] pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"
