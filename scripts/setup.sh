#!/usr/bin/env bash
# Idempotent machine set-up for the BORA stack: .venv (Python 3.11) with pinned packages,
# the ROS 2 wheels' CMake path fix, the dev .pth, and Debian's headless EGL libraries.
# A second run with unchanged requirements finishes in a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${BORA_PYTHON:-python3.11}
VENV=$ROOT/.venv

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages for headless rendering (MuJoCo EGL through Mesa).
APT_PKGS="libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2 libosmesa6"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian packages:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    say "WARNING: missing Debian packages:$missing"
    say "         run: sudo apt-get install -y$missing   (needed for camera rendering)"
  fi
fi

# 1b. Debian's Chromium for the browser test of `bora viz --serve` (headless, software WebGL).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian package: chromium (browser test of bora viz)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "WARNING: chromium not found: the browser test of bora viz will fail (sudo apt-get install -y chromium)"
  fi
fi

# 2. The virtual environment.
if ! command -v "$PY" >/dev/null; then
  echo "error: $PY not found; BORA needs Python 3.11 (set BORA_PYTHON to its path)" >&2; exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
stamp=$VENV/.bora-requirements.sha256
want=$(cat requirements.in requirements.lock scripts/setup.sh | sha256sum | cut -d' ' -f1)
SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')  # the venv's site-packages
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing pinned Python packages (first run: ~2-3 minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # pip byte-compiles the venv's ~19k .py files on one core; compileall does it on all cores (on 2 AVX2 vCPUs
  # 57 s instead of about 100 s). They must be compiled at install: with PYTHONDONTWRITEBYTECODE=1 (set in
  # this machine's environment) every process would otherwise recompile each module it imports.
  # `|| true`: a few files of the wheels do not compile on this Python (torch's py312_intrinsics.py); pip
  # skips them silently too.
  "$VENV/bin/python" -m pip install -q --no-compile -r requirements.in -c requirements.lock
  "$VENV/bin/python" -m compileall -qq -j 0 "$SP" || true
  "$VENV/bin/python" scripts/fix_ros_cmake_paths.py "$VENV"
  echo "$want" > "$stamp"
else
  say "Python packages up to date"
fi

# 3. Put the workspace's Python packages on the venv's path (editable, no copy).
: > "$SP/bora_dev.pth"
for p in bora_policy bora_teleop bora_trainer bora_sim; do echo "$ROOT/src/$p" >> "$SP/bora_dev.pth"; done

# 4. Dockerfile linter (no Docker engine runs here; the image is linted and its compose files parsed).
if [ ! -x "$ROOT/.tools/node_modules/.bin/dockerfilelint" ]; then
  if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  if command -v npm >/dev/null; then
    say "installing dockerfilelint (npm) into .tools/"
    npm install --no-audit --no-fund --silent --prefix "$ROOT/.tools" dockerfilelint@1.8.0 >/dev/null
  else
    say "WARNING: npm not found: the Dockerfile lint test will fail (install nodejs + npm)"
  fi
fi

# 5. The `bora` command in the venv (the console script of bora_trainer).
cat > "$VENV/bin/bora" <<BORA
#!$VENV/bin/python
import sys
from bora_trainer.cli import main
sys.exit(main())
BORA
chmod +x "$VENV/bin/bora"
say "done: $($VENV/bin/python --version), torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null)"
