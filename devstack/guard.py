"""Run a command that knows nothing of the stack, and stop it with the stack.

    python devstack/guard.py npm run dev -- --port 5173     (stdlib only: runs from any folder)

The command runs in the guard's process group. Signals from the supervisor
reach the whole group anyway; what the guard adds is the case where the
supervisor itself dies without stopping its children (SIGKILL, OOM): the
guard notices that it was re-parented and stops the group (npm, vite and
esbuild), so no server is left holding the port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

CHECK_SECONDS = 0.5
STOP_SECONDS = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python devstack/guard.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    parent = os.getppid()
    process = subprocess.Popen(command)

    def forward(signum: int, frame: Any) -> None:
        process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            return process.wait(CHECK_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            break
    # The supervisor is gone: stop the whole group, the guard included.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)
    return 1


if __name__ == "__main__":
    sys.exit(main())
