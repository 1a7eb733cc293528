"""The bytes the app writes to its logs, counted per request (nothing shown).

On Lambda everything a function writes to stdout or stderr becomes CloudWatch
Logs events, billed by the byte ingested. :class:`LogMeter` swaps a counting
sink in for ``sys.stdout``, ``sys.stderr`` and the stream of every logging
``StreamHandler`` that exists when it is installed (Chalice's, Powertools'
and any other on any logger), so what the app's handlers format and print
(log lines, embedded-metric lines) is counted as written, then dropped.
Install it after the app is imported, so its handlers exist.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any


class CountingSink(io.TextIOBase):
    """A text stream that counts UTF-8 bytes and lines, and keeps the last ``keep`` characters."""

    def __init__(self, keep: int = 4000) -> None:
        super().__init__()
        self.bytes = 0
        self.lines = 0
        self.keep = keep
        self.tail = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.bytes += len(text.encode("utf-8", "replace"))
        self.lines += text.count("\n")
        if self.keep:
            self.tail = (self.tail + text)[-self.keep :]
        return len(text)

    def flush(self) -> None:
        pass


class LogMeter:
    def __init__(self) -> None:
        self.sink = CountingSink()
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._std: tuple[Any, Any] | None = None
        self._mark = (0, 0)

    def install(self) -> LogMeter:
        loggers = [logging.getLogger()] + [
            logger
            for logger in logging.Logger.manager.loggerDict.values()
            if isinstance(logger, logging.Logger)
        ]
        for logger in loggers:
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler
                ):
                    self._handlers.append((handler, handler.setStream(self.sink)))  # type: ignore[arg-type]
        self._std = (sys.stdout, sys.stderr)
        sys.stdout = sys.stderr = self.sink  # type: ignore[assignment]
        return self

    def uninstall(self) -> None:
        for handler, stream in reversed(self._handlers):
            handler.setStream(stream)
        self._handlers.clear()
        if self._std is not None:
            sys.stdout, sys.stderr = self._std
            self._std = None

    def take(self) -> tuple[int, int]:
        """(bytes, lines) written since the previous call."""
        now = (self.sink.bytes, self.sink.lines)
        delta = (now[0] - self._mark[0], now[1] - self._mark[1])
        self._mark = now
        return delta
