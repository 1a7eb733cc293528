"""The stream pump: what Lambda's event source mapping does, done locally.

``chalice local`` serves routes only. The pump reads the table's stream
from the emulator with the DynamoDB Streams API every 0.2 s and calls the
app's ``@app.on_dynamodb_record`` handler with the event in Lambda's shape,
in batches of the handler's ``batch_size``. When the handler raises, the
batch is kept and handed over again (with a growing pause), and newer
records wait behind it: the shard is blocked until the batch succeeds, as
it is on Lambda.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from chalicelib.errors import error_code
from devstack.streams import StreamReader, lambda_event

POLL_SECONDS = 0.2
MAX_RETRY_SECONDS = 5.0

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class StreamHandler:
    """One ``@app.on_dynamodb_record`` function of the app."""

    name: str
    handler: Handler
    batch_size: int


def registered(app_module: ModuleType, config_type: type) -> list[tuple[Any, Handler]]:
    """(event source, its function) for each event source of ``config_type`` the app registered."""
    return [
        (source, getattr(app_module, source.handler_string.rpartition(".")[2]))
        for source in app_module.app.event_sources
        if isinstance(source, config_type)
    ]


def stream_handlers(app_module: ModuleType) -> list[StreamHandler]:
    """The app's DynamoDB stream handlers, found as Chalice registered them."""
    from chalice.app import DynamoDBEventConfig

    return [
        StreamHandler(source.name, function, source.batch_size)
        for source, function in registered(app_module, DynamoDBEventConfig)
    ]


def lambda_context(name: str) -> Any:
    """The context Lambda hands the function ``name`` (as chalice local makes one)."""
    from chalice.local import LambdaContext

    return LambdaContext(name, memory_size=128, max_runtime_ms=60_000)


def _reason(error: Exception) -> str:
    return f"{type(error).__name__} {error_code(error)}".strip()


class Pump:
    """Moves records from one stream to one handler; :meth:`tick` is one poll."""

    def __init__(
        self,
        reader: StreamReader,
        target: StreamHandler,
        stream_arn: str,
        log: Callable[[str], None] = print,
    ) -> None:
        self.reader = reader
        self.target = target
        self.stream_arn = stream_arn
        self.log = log
        self.pending: list[dict[str, Any]] = []

    def tick(self) -> int:
        """Hand the kept or new records to the handler; return how many it took.

        The handler's exception propagates; the failed batch and the records
        after it stay in :attr:`pending` for the next tick.
        """
        if not self.pending:
            self.pending = self.reader.poll()
        handled = 0
        while self.pending:
            batch = self.pending[: self.target.batch_size]
            self.target.handler(lambda_event(batch, self.stream_arn), lambda_context(self.target.name))
            del self.pending[: len(batch)]
            handled += len(batch)
        return handled

    def run(self, stop: threading.Event, interval: float = POLL_SECONDS) -> None:
        """Tick until ``stop`` is set; failures are logged and retried."""
        delay = interval
        failures = 0
        while True:
            try:
                self.tick()
                if failures:
                    self.log(f"{self.target.name}: delivered after {failures} failed attempts")
                failures, delay = 0, interval
            except Exception as error:  # noqa: BLE001 - Lambda retries whatever the handler raised
                failures += 1
                delay = min(interval * 2**failures, MAX_RETRY_SECONDS)
                kept = len(self.pending)
                self.log(
                    f"{self.target.name} failed ({_reason(error)}); "
                    f"{kept} record{'s' if kept != 1 else ''} kept, trying again in {delay:.1f} s"
                )
            if stop.wait(delay):
                return


class Pumps:
    """One running pump thread per stream handler of the app."""

    def __init__(
        self, app_module: ModuleType, client: Any, stream_arn: str, log: Callable[[str], None]
    ) -> None:
        self.targets = stream_handlers(app_module)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=Pump(StreamReader(client, stream_arn), target, stream_arn, log).run,
                args=(self._stop,),
                name=f"pump-{target.name}",
                daemon=True,
            )
            for target in self.targets
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
