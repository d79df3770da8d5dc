#!/usr/bin/env bash
# Create/reuse the virtual environment, install hgq_chip with its dev, rtl (da4ml), qkeras and plot extras, run the tests.
# Extra arguments go to pytest (e.g. `bash ci/test.sh -m slow`).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" dev,rtl,qkeras,plot
cd "$ROOT"
set +e
python -m pytest -q "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "[ci] pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"
