"""The local API server's socket settings (what makes it answer promptly under load)."""

from __future__ import annotations

import socket


def test_local_server_has_a_deep_backlog_and_sends_without_delay():
    from chalice import Chalice

    from devstack.api import LISTEN_BACKLOG, local_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = local_server(Chalice(app_name="probe"), None, port)
    try:
        assert server.server.request_queue_size == LISTEN_BACKLOG >= 128
        handler = server.server.RequestHandlerClass.func  # functools.partial of the handler class
        assert handler.disable_nagle_algorithm is True
    finally:
        server.server.server_close()
