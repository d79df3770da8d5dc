#!/usr/bin/env bash
# Create/reuse the virtual environment, then train, convert and verify a small model end to end.
# Extra arguments go to examples/train_convert_verify.py (e.g. `bash ci/demo.sh --epochs 10`).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
cd "$ROOT"
python examples/train_convert_verify.py "$@"
