"""What every server process of the stack does: serve until told to stop.

A child stops on SIGTERM or SIGINT (what the supervisor sends), and also
when its parent is gone, so that a supervisor killed with SIGKILL does not
leave servers running.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence
from typing import Any, Protocol


class Server(Protocol):
    def serve_forever(self, poll_interval: float = ...) -> None: ...
    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...


def serve_until_stopped(servers: Sequence[Server], parent_check_seconds: float = 0.5) -> None:
    """Serve each server in its own thread; return after a clean shutdown."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent = os.getppid()
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True) for s in servers
    ]
    for thread in threads:
        thread.start()
    while not stop.wait(parent_check_seconds):
        if os.getppid() != parent:  # re-parented: the supervisor is gone
            break
    for server in servers:
        server.shutdown()
        server.server_close()
