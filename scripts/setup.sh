#!/usr/bin/env bash
# Install what the project needs, quickly skipped when already done.
#   scripts/setup.sh            Python venv + requirements + the project (simple-otp), frontend npm ci
#   scripts/setup.sh --browser  also Debian's Chromium (apt-get) for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed as '$PYTHON' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

want=$(stamp_of requirements.txt requirements-dev.txt pyproject.toml)
if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/simple-otp ] \
  || [ "$(cat .venv/.stamp 2>/dev/null)" != "$want" ]; then
  say "Python: creating .venv, installing requirements-dev.txt and the project (first run takes a minute)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import chalice, moto, argon2, pytest" # fail loudly if the install did not take
  # The project itself, editable: the simple-otp command (ops.cli) runs this checkout's code.
  .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps -e .
  .venv/bin/simple-otp --help >/dev/null # fail loudly if the command is not there
  echo "$want" > .venv/.stamp
else
  say "Python: .venv is up to date"
fi

if [ -f frontend/package-lock.json ]; then
  want=$(stamp_of frontend/package-lock.json)
  if [ ! -d frontend/node_modules ] || [ "$(cat frontend/node_modules/.stamp 2>/dev/null)" != "$want" ]; then
    say "Frontend: npm ci"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > frontend/node_modules/.stamp
  else
    say "Frontend: node_modules is up to date"
  fi
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  say "Browser: installing Debian's chromium with apt-get"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  /usr/bin/chromium --version
fi
