"""Child processes of the stack: started in their own process groups, their
output prefixed with their name, stopped as a group (TERM, then KILL).

Each child gets its own process group so that Ctrl-C in the terminal
reaches the supervisor only, which then stops the children in order, and
so that stopping a child also stops what it started (npm -> vite -> esbuild).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

STOP_SECONDS = 5.0


class Output:
    """Console lines, one writer at a time: ``name | text`` for children."""

    def __init__(self, stream: TextIO | None = None, errors: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.errors = errors or sys.stderr
        self._lock = threading.Lock()
        self._bold = self.stream.isatty()

    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    def say(self, text: str) -> None:
        """A progress line of the supervisor."""
        mark = "\033[1m==>\033[0m" if self._bold else "==>"
        self._write(self.stream, f"{mark} {text}")

    def plain(self, text: str = "") -> None:
        self._write(self.stream, text)

    def line(self, name: str, text: str) -> None:
        """A line of a child's output (or of the pump)."""
        self._write(self.stream, f"{name:<4} | {text.rstrip()}")

    def error(self, text: str) -> None:
        """The one line that says why the stack did not start or stopped."""
        self._write(self.errors, f"error: {text}")


class OutputHandler(logging.Handler):
    """Routes a logger's records to :meth:`Output.line` under ``name``."""

    def __init__(self, output: Output, name: str) -> None:
        super().__init__()
        self.output = output
        self.prefix = name
        self.setFormatter(logging.Formatter("%(name)s - %(levelname)s - %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.output.line(self.prefix, self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class Child:
    """One child process, its output relayed line by line."""

    def __init__(
        self,
        name: str,
        what: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        output: Output,
    ) -> None:
        self.name = name
        self.what = what
        self.output = output
        self.tail: deque[str] = deque(maxlen=40)
        self.process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._relay, name=f"relay-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _relay(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.tail.append(line.rstrip())
            self.output.line(self.name, line)

    def running(self) -> bool:
        return self.process.poll() is None

    def failure(self) -> str:
        """Why it stopped: its own ``error:`` line when it printed one."""
        self.join_output()
        for line in reversed(self.tail):
            if line.startswith("error: "):
                return line.removeprefix("error: ")
        code = self.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"stopped (exit code {code})"
        return f"the {self.what} {how}; its output is above"

    def join_output(self, seconds: float = 1.0) -> None:
        self._reader.join(seconds)

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def stop_all(
    children: Iterable[Child], seconds: float = STOP_SECONDS, hurry: threading.Event | None = None
) -> None:
    """SIGTERM to every child's group, wait (until ``hurry`` is set), SIGKILL what is left, reap."""
    children = list(children)
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while any(child.running() for child in children) and time.monotonic() < deadline:
        if hurry is not None and hurry.is_set():
            break
        time.sleep(0.02)
    for child in children:
        # The whole group, also when its leader is gone: a grandchild may outlive it.
        child.signal_group(signal.SIGKILL)
        child.process.wait()
        child.join_output()


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when an HTTP server answers at ``url`` (any status)."""
    try:
        with _OPENER.open(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
