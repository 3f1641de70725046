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
import json
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


STATS_PATH = "/_flashcart/stats"

# Single-item reads need no lock: in moto a GetItem is one dict lookup (atomic
# under the GIL). Real DynamoDB does not queue reads behind unrelated writes
# either. A read may see an item between two writes of one transaction, which
# DynamoDB's isolation forbids; nothing in Flashcart reads that way to decide.
UNLOCKED = {"GetItem", "DescribeTable"}


def _patch_transactions():
    """Make moto's TransactWriteItems cost what it touches, not the table size.

    moto backs up every table a transaction names with copy.deepcopy before
    applying it, so each transaction costs time proportional to everything
    stored: with orders and idempotency records accumulating, a flash sale slows
    down request by request. DynamoDB requests are serialised by our lock, so it
    is enough to snapshot the items the transaction names and put them back if
    it is cancelled.
    """
    import copy as real_copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class NoTableCopies:
        copy = staticmethod(real_copy.copy)

        @staticmethod
        def deepcopy(obj, memo=None):
            return obj if isinstance(obj, Table) else real_copy.deepcopy(obj, memo)

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        snapshots = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            source = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in source:
                continue
            h = DynamoType(source[table.hash_key_attr])
            r = DynamoType(source[table.range_key_attr]) if table.range_key_attr in source else None
            snapshots.append((table, h, r, real_copy.deepcopy(table.get_item(h, r))))
        models.copy = NoTableCopies
        try:
            return original(self, transact_items)
        except Exception:
            for table, h, r, old in reversed(snapshots):
                if old is None:
                    table.delete_item(h, r)
                elif r is not None:
                    table.items[h][r] = old
                else:
                    table.items[h] = old
            raise
        finally:
            models.copy = real_copy

    DynamoDBBackend.transact_write_items = transact_write_items


def _patch_send_message():
    """Make moto's SendMessage cost the same however full the queue is.

    moto's send_message reads one queue attribute (ContentBasedDeduplication)
    through `queue.attributes`, which builds every attribute, and counting the
    approximate number of messages scans every message in the queue. During a
    flash sale the order queue fills, so each send got slower than the last.
    While a send runs (flagged per thread: SQS requests run in parallel), the
    attributes are only the one it reads; GetQueueAttributes is untouched.
    """
    from moto.sqs.models import Queue, SQSBackend

    sending = threading.local()
    full = Queue.attributes

    def attributes(self):
        if not getattr(sending, "active", False):
            return full.fget(self)
        if not self.fifo_queue:
            return {}
        value = getattr(self, "content_based_deduplication", False)
        return {"ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value}

    Queue.attributes = property(attributes)
    original = SQSBackend.send_message

    def send_message(self, *args, **kwargs):
        sending.active = True
        try:
            return original(self, *args, **kwargs)
        finally:
            sending.active = False

    SQSBackend.send_message = send_message


class SerialisedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else in parallel.

    It also counts DynamoDB requests by operation; GET /_flashcart/stats answers
    the counts as JSON (the flash-sale benchmark reads them to report DynamoDB
    calls per checkout)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.count_lock = threading.Lock()  # counting never waits behind a DynamoDB request
        self.counts = {}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == STATS_PATH and environ.get("REQUEST_METHOD") == "GET":
            with self.count_lock:
                body = json.dumps({"dynamodb": dict(self.counts)}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        operation = target.split(".", 1)[-1]
        with self.count_lock:
            self.counts[operation] = self.counts.get(operation, 0) + 1
        if operation in UNLOCKED:
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

    _patch_transactions()
    _patch_send_message()
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
