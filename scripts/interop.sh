#!/usr/bin/env bash
# `make interop`: LeRobot reads what `bora dataset export` writes, and `bora dataset import` reads
# what LeRobot writes, checked with the released `lerobot` package in its own venv (.interop-venv;
# .venv is never touched: lerobot pins torch<2.11 and rerun-sdk<0.27, .venv has torch 2.13 and rerun 0.41).
# The result (versions, pass/fail per direction) is printed and written to bench/results/interop.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${BORA_PYTHON:-python3.11}
IVENV=$ROOT/.interop-venv
LEROBOT_VERSION=0.4.4   # the newest release installable on Python 3.11 (0.5+ require Python >= 3.12)
say() { printf '\033[1m[interop]\033[0m %s\n' "$*"; }

[ -x "$ROOT/.venv/bin/python" ] || { echo "error: .venv missing: run make setup first" >&2; exit 1; }
if [ ! -x "$IVENV/bin/python" ]; then
  say "creating $IVENV"
  "$PY" -m venv --without-pip "$IVENV"   # ensurepip may be absent; .venv's pip installs into it (--python)
fi
if ! "$IVENV/bin/python" -c "import lerobot, sys; sys.exit(lerobot.__version__ != '$LEROBOT_VERSION')" 2>/dev/null; then
  say "installing lerobot==$LEROBOT_VERSION into $IVENV (first run: torch 2.10 from PyPI with its CUDA libraries, ~4 GB)"
  "$ROOT/.venv/bin/python" -m pip --python "$IVENV/bin/python" install -q "lerobot==$LEROBOT_VERSION"
fi
"$IVENV/bin/python" -c "import lerobot, torch; print('lerobot', lerobot.__version__, 'torch', torch.__version__)"
# the two directions: BORA side in .venv, LeRobot side in .interop-venv
set +u; source scripts/env.sh >/dev/null; set -u   # env.sh sources colcon's setup (unset variables)
"$ROOT/.venv/bin/python" scripts/interop_check.py --interop-python "$IVENV/bin/python" "$@"
# the tests that need LeRobot's environment (deselected in make test): the peer update benchmark
exec "$ROOT/.venv/bin/python" -m pytest src -m interop
