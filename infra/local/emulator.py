"""The local AWS emulator: moto's WSGI app, threaded, with DynamoDB serialised.

Neither of moto's own modes works for Flashcart (DESIGN.md, "Local stack"):
- threaded, moto's conditional writes are not atomic: 64 concurrent conditional
  decrements of a stock of 500 sold 502;
- single-threaded, one SQS long poll (WaitTimeSeconds=20) stalls every other
  call for 20 s, because moto waits inside the request.
So requests run on threads, and every DynamoDB request (header
`X-Amz-Target: DynamoDB_...`) is taken under one lock. Real DynamoDB serialises
writes per item; one lock for all of DynamoDB is stricter, never looser.

Usage: python emulator.py [--host 127.0.0.1] [--port 4566] [--port-file PATH]
With --port 0 the OS picks a free port; it is printed (and written to
--port-file) once the server accepts connections.
"""

import argparse
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else in parallel."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            # Drain the whole response under the lock: moto may do its work lazily.
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()


class QuietHandler(MotoRequestHandler):
    """No access log line per request: a flash-sale test makes tens of thousands."""

    def log_request(self, code="-", size="-"):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMULATOR_PORT", "4566")))
    parser.add_argument("--port-file")
    args = parser.parse_args()

    app = SerialisedDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=QuietHandler)
    port = server.server_port
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"emulator: moto (DynamoDB serialised) on http://{args.host}:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
