#!/usr/bin/env bash
# The whole system on this machine, in the foreground (make run):
#   AWS emulator (moto server) on 127.0.0.1:4566, API (chalice local) on :8000,
#   stream pump, mailbox on :8025, login page (vite) on :5173.
# Ports: LOCAL_AWS_PORT, LOCAL_API_PORT, LOCAL_MAILBOX_PORT, LOCAL_WEB_PORT.
# Settings: any OTP_* variable overrides the local stage's value.
# Ctrl-C stops everything it started. See docs/local.md.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
exec .venv/bin/python -m devstack "$@"
