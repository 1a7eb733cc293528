"""The API process: Chalice's local server for the ``local`` stage.

    python -m devstack.api --port 8000

This is what ``chalice local --stage local --no-autoreload`` runs, through
Chalice's own Python API, with one difference: ``chalice local`` copies the
stage's environment variables from ``.chalice/config.json`` over the process
environment, which would undo a user's ``OTP_TTL_SECONDS=30 make run``. Here
the supervisor has already merged the stage's variables under the user's
(devstack.environment), so the config's copy goes to a throwaway mapping.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from devstack import child
from devstack.environment import API, HOST, ROOT, STAGE, port_message

LISTEN_BACKLOG = 256


def local_server(app: Any, config: Any, port: int) -> Any:
    """``chalice.local.create_local_server``, with a listen backlog of 256 and
    Nagle's algorithm off.

    Python's socketserver listens with a backlog of 5: a burst of 40
    concurrent clients then sees connection resets from the kernel, and a
    load test would measure those instead of the app. And the handler writes
    headers and body in separate small packets, so with Nagle's algorithm on
    every answer waits for the client's delayed ACK (about 40 ms).
    """
    from chalice import local

    class Server(local.ThreadedHTTPServer):
        request_queue_size = LISTEN_BACKLOG

    class Handler(local.ChaliceRequestHandler):
        disable_nagle_algorithm = True

    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app.__class__)
    app.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(app, config, HOST, port, handler_cls=Handler, server_cls=Server)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.api")
    parser.add_argument("--port", type=int, default=API.default)
    args = parser.parse_args(argv)

    # As `chalice local` does: the CLI-mode flag, and the app's log lines on stdout.
    os.environ["AWS_CHALICE_CLI_MODE"] = "true"
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials in ..." per client

    from chalice.cli.factory import CLIFactory
    from chalice.deploy.validate import validate_routes

    factory = CLIFactory(str(ROOT), environ={})  # the stage's variables land here, not in os.environ
    config = factory.create_config_obj(chalice_stage_name=STAGE)
    app = config.chalice_app
    validate_routes(app.routes)  # what `chalice deploy` would refuse, refused here too
    try:
        server = local_server(app, config, args.port)
    except OSError as error:
        print(f"error: {port_message(API, args.port, error)}", file=sys.stderr, flush=True)
        return 2
    print(f"chalice local (stage {STAGE}) on http://{HOST}:{args.port}", flush=True)
    child.serve_until_stopped([server.server])
    return 0


if __name__ == "__main__":
    sys.exit(main())
