# Sourced by ci/*.sh: create or reuse the project's virtual environment and install the package.
# Usage: . ci/_venv.sh EXTRAS   (e.g. "dev" or "")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HGQ_CHIP_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[ci] creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
extras="${1:-}"
spec="$ROOT"
[ -n "$extras" ] && spec="$ROOT[$extras]"
echo "[ci] installing hgq_chip${extras:+[$extras]} into $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e "$spec"
export PATH="$VENV/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
