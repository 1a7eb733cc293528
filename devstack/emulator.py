"""The AWS emulator process: moto server and the mailbox, side by side.

    python -m devstack.emulator --aws-port 4566 --mailbox-port 8025

moto server is run in-process (its own WSGI app under werkzeug) so that the
mailbox can read SES's sent messages from moto's backend, and so that every
request can be wrapped in one global lock: moto handles concurrent requests
without locking, while real DynamoDB applies the writes to one item one at a
time. Under the lock, a conditional write is atomic as it is on AWS.

In the same process SES's event publishing is added to moto
(:mod:`devstack.local_ses`): each message accepted through a configuration
set with an SNS event destination gets its ``Send`` record, and, once the
mailbox stores it, the records of what the receiving side made of it
(``Delivery``; ``Bounce`` or ``Complaint`` for SES's mailbox simulator).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from devstack import child
from devstack.environment import AWS, HOST, MAILBOX, port_message
from devstack.local_ses import LocalSes, install_event_destinations, install_send_hook
from devstack.mailbox import Outbox, console_line, make_server, moto_sent_messages

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Serialized:
    """WSGI middleware: one request at a time through ``app``, then ``after()``.

    The request body is read before the lock is taken and the response body
    is read before it is released, so the lock covers exactly the emulator's
    work on the request. The lock is reentrant: work done for the emulator
    outside a request (SES's events, published when the mailbox stores a
    message) takes it too, and the same work inside a request must not wait
    on itself.
    """

    def __init__(self, app: WSGIApp, after: Callable[[], Any] | None = None) -> None:
        self.app = app
        self.after = after
        self.lock = threading.RLock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit():
            body = environ["wsgi.input"].read(int(length))
            environ["wsgi.input"] = io.BytesIO(body)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                chunks = [bytes(chunk) for chunk in result]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        if self.after is not None:
            self.after()
        return chunks


def keep_streams_across_rollbacks() -> None:
    """Make a cancelled TransactWriteItems leave no trace in the table's stream.

    On a cancelled transaction moto swaps in a deep copy of the table taken
    before it, with a copy of the stream shard; the old shard, still held by
    any open shard iterator, keeps the records of the writes that were undone.
    A reader can then see writes that never happened and skip real records
    that reuse their sequence numbers. DynamoDB writes no stream record for a
    cancelled transaction, so here the live shard is kept, cut back to its
    length before the transaction, and attached to the restored table.

    The shard is also left out of moto's copy of the table (it is shared
    instead): copying every stream record on every transaction made each
    transaction slower than the last, with no purpose once the shard is
    restored this way.
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "keeps_streams", False):
        return
    StreamShard.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        before = {
            name: (table, table.stream_shard, len(table.stream_shard.items))
            for name, table in self.tables.items()
            if table.stream_shard is not None
        }
        try:
            return original(self, transact_items)
        except Exception:
            for name, (table, shard, length) in before.items():
                restored = self.tables.get(name)
                if restored is not None and restored is not table:
                    del shard.items[length:]
                    shard.table = restored
                    restored.stream_shard = shard
            raise

    transact_write_items.keeps_streams = True  # type: ignore[attr-defined]
    transact_write_items.__wrapped__ = original  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def make_aws_server(port: int, after: Callable[[], Any] | None = None, app: Serialized | None = None) -> Any:
    """moto server's app, serialized, on a threaded werkzeug server (bound, not serving)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server as make_wsgi_server

    keep_streams_across_rollbacks()
    app = app if app is not None else serialized_moto(after)
    return make_wsgi_server(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)


def serialized_moto(after: Callable[[], Any] | None = None) -> Serialized:
    """moto server's WSGI app behind the one request lock."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return Serialized(DomainDispatcherApplication(create_backend_app), after)


class PortUnusable(Exception):
    """A server of the emulator could not bind its port; the message is the one line."""


def make_emulator(
    aws_port: int, mailbox_port: int, region: str, log: Callable[[str], None] = print
) -> tuple[list[Any], Outbox, LocalSes]:
    """The emulator's two servers (bound, not serving), its mailbox and its SES events."""
    mailbox_url = f"http://{HOST}:{mailbox_port}"

    def announce(message: Any) -> None:
        log(f"{console_line(message)} (read it at {mailbox_url})")

    app = serialized_moto()
    ses = LocalSes(lock=app.lock, log=log)
    install_event_destinations()
    install_send_hook(ses.accepted)
    outbox = Outbox(moto_sent_messages(region), on_new=announce, receiver=ses.receive)
    app.after = outbox.collect
    servers: list[Any] = []
    for port, number, factory in (
        (AWS, aws_port, lambda n: make_aws_server(n, app=app)),
        (MAILBOX, mailbox_port, lambda n: make_server(outbox, HOST, n)),
    ):
        try:
            servers.append(factory(number))
        except OSError as error:
            for server in servers:
                server.server_close()
            raise PortUnusable(port_message(port, number, error)) from None
    return servers, outbox, ses


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.emulator")
    parser.add_argument("--aws-port", type=int, default=AWS.default)
    parser.add_argument("--mailbox-port", type=int, default=MAILBOX.default)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the pump polls five times a second

    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    try:
        servers, _, _ = make_emulator(
            args.aws_port, args.mailbox_port, region, log=lambda text: print(text, flush=True)
        )
    except PortUnusable as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    mailbox_url = f"http://{HOST}:{args.mailbox_port}"
    print(f"moto server on http://{HOST}:{args.aws_port}, mailbox on {mailbox_url}", flush=True)
    child.serve_until_stopped(servers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
