"""The local AWS emulator: moto's WSGI app, threaded, with DynamoDB serialised.

Neither of moto's own modes works for Flashcart (DESIGN.md, "Local stack"):
- threaded, moto's conditional writes are not atomic: 64 concurrent conditional
  decrements of a stock of 500 sold 502;
- single-threaded, one SQS long poll (WaitTimeSeconds=20) stalls every other
  call for 20 s, because moto waits inside the request.
So requests run on threads, and every DynamoDB request (header
`X-Amz-Target: DynamoDB_...`) is taken under one lock. Real DynamoDB serialises
writes per item; one lock for all of DynamoDB is stricter, never looser.

The launcher also patches moto where its cost grows with the data or repeats
work per request (ADR 0001, ADR 0008): each patch keeps moto's answers, which
test_emulator.py checks against unpatched moto (`--unpatched`).

Usage: python emulator.py [--host 127.0.0.1] [--port 4566] [--port-file PATH] [--unpatched]
With --port 0 the OS picks a free port; it is printed (and written to
--port-file) once the server accepts connections. The local stack runs two:
one for DynamoDB, one for SQS and S3 (ADR 0008).
"""

import argparse
import json
import re
import os
import pickle
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
APP_NAME = re.compile(r"\bapp/([A-Za-z0-9_.-]+)")
# Attributes the launcher adds to moto's cached update-expression trees.
FROZEN = "_flashcart_frozen"
SOURCE = "_flashcart_source"

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
    is enough to snapshot the items the transaction names (and the length of
    each table's stream) and put them back if it is cancelled, as moto's
    restored tables would be. An item whose key cannot be read is not
    snapshotted: moto cannot write it either. (One difference, towards
    DynamoDB: an entry naming two operations makes moto raise with the earlier
    entries still written; here nothing stays written.)
    """
    import copy as real_copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    class NoTableCopies:
        copy = staticmethod(real_copy.copy)

        @staticmethod
        def deepcopy(obj, memo=None):
            return obj if isinstance(obj, Table) else real_copy.deepcopy(obj, memo)

    original = DynamoDBBackend.transact_write_items

    def snapshot(backend, op):
        try:
            table = backend.tables[op["TableName"]]
            h, r = backend.get_keys_value(table, op.get("Key") or op.get("Item") or {})
        except Exception:  # moto answers for it, and writes nothing for it
            return None
        if r is None:
            return table, h, r, h in table.items, real_copy.deepcopy(table.items.get(h))
        bucket = table.items.get(h)
        return table, h, r, bucket is not None, real_copy.deepcopy(bucket.get(r) if bucket is not None else None)

    def restore(table, h, r, existed, old):
        if r is None:
            if existed:
                table.items[h] = old
            else:
                table.items.pop(h, None)
            return
        if not existed:
            table.items.pop(h, None)
            return
        bucket = table.items.setdefault(h, {})
        if old is None:
            bucket.pop(r, None)
        else:
            bucket[r] = old

    def transact_write_items(self, transact_items):
        snapshots, streams = [], {}
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            taken = snapshot(self, op) if isinstance(op, dict) else None
            if taken is not None:
                snapshots.append(taken)
                table = taken[0]
                if table.stream_shard is not None and id(table) not in streams:
                    streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
        models.copy = NoTableCopies
        try:
            return original(self, transact_items)
        except Exception:
            for taken in reversed(snapshots):
                restore(*taken)
            for shard, length in streams.values():
                del shard.items[length:]
            raise
        finally:
            models.copy = real_copy

    DynamoDBBackend.transact_write_items = transact_write_items


def _patch_parsing():
    """Parse each distinct expression once, and find each service once.

    moto lexes a condition expression and parses an update expression anew
    each time it meets one, three times per item of a transaction, and works
    out which service a request is for by listing its own modules on disk for
    every request. Both depend only on their input: an update expression's
    tree is copied by the validator before anything changes it, and lexed
    condition tokens are immutable tuples. Attribute values are never part of
    a cache key, so the same expression costs the same whatever it carries.
    """
    import functools
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    make = UpdateExpressionParser.make.__func__

    @functools.lru_cache(maxsize=1024)
    def parse_update(expression):
        tree = make(UpdateExpressionParser, expression)
        # The validator deep-copies the tree before changing it; unpickling
        # a frozen copy gives the same tree in a fifth of the time.
        tree.__dict__[FROZEN] = pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)
        tree.__dict__[SOURCE] = expression
        return tree

    UpdateExpressionParser.make = classmethod(lambda cls, expression: parse_update(expression))

    lex = ConditionExpressionParser._lex_condition_expression

    @functools.lru_cache(maxsize=1024)
    def lex_condition(expression):
        parser = ConditionExpressionParser.__new__(ConditionExpressionParser)
        parser.condition_expression = expression
        return tuple(lex(parser))

    ConditionExpressionParser._lex_condition_expression = lambda self: deque(
        lex_condition(self.condition_expression)
    )

    # A condition is parsed with its names and values substituted, so those
    # are part of the key; moto parses each condition of a transaction three
    # times with the same ones. The tree is only read once built.
    parse = ConditionExpressionParser.parse

    @functools.lru_cache(maxsize=4096)
    def parse_condition(expression, names, values):
        parser = ConditionExpressionParser(expression, json.loads(names), json.loads(values))
        tree = parse(parser)
        return tree, tuple(parser.expr_attr_names_found), tuple(parser.expr_attr_values_found)

    def parse_once(self):
        if not self.condition_expression:
            return parse(self)
        try:
            key = (
                self.condition_expression,
                json.dumps(self.expression_attribute_names, sort_keys=True),
                json.dumps(self.expression_attribute_values, sort_keys=True),
            )
        except (TypeError, ValueError):
            return parse(self)
        tree, names, values = parse_condition(*key)
        self.expr_attr_names_found.extend(names)
        self.expr_attr_values_found.extend(values)
        return tree

    ConditionExpressionParser.parse = parse_once

    # Each of the ten validators walking an update expression's tree asks, at
    # every node, which node classes it handles, and builds that answer anew
    # from a dict of bound methods; the classes are fixed per validator class.
    kinds = {}

    def nodes_to_be_processed(self):
        cls = type(self)
        if cls not in kinds:
            kinds[cls] = tuple(self._processing_map())
        return kinds[cls]

    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed

    find = DomainDispatcherApplication.get_backend_for_host
    backends = {}

    def get_backend_for_host(self, host):
        if host not in backends:
            backends[host] = find(self, host)
        return backends[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


def _patch_validation():
    """Copy a cached update expression's tree cheaply, and validate it once per write.

    Every update is validated by walking its tree ten times. For an item that
    does not exist yet, moto validates twice: against an empty stand-in before
    creating the item (so a bad expression creates nothing), then against the
    item just created, which holds only its key. The two differ only if the
    expression reads a key attribute; otherwise the second validation returns
    the first one's result (which nothing else uses). Counters and records
    created by an update, two items of each checkout, are exactly that case.
    (moto 5.2 refuses any update expression that names a key attribute, so
    the key check only matters if a later moto stops refusing.)
    """
    import copy
    import re

    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    def copy_tree(obj, memo=None):
        frozen = getattr(obj, "__dict__", {}).get(FROZEN)
        return pickle.loads(frozen) if frozen is not None else copy.deepcopy(obj, memo)

    validators.deepcopy = copy_tree

    first = threading.local()
    validate = UpdateExpressionValidator.validate
    word = re.compile(r"[#:]?[A-Za-z0-9_]+")

    def reads_a_key(expression, names, table):
        keys = {table.hash_key_attr, table.range_key_attr}
        return any((names or {}).get(w, w) in keys for w in word.findall(expression))

    def validate_once(self):
        prior, first.prior = getattr(first, "prior", None), None
        item, table = self.item, self.table
        same = (id(self.expression), id(self.expression_attribute_names), id(self.expression_attribute_values))
        if prior is not None and prior[0] == same and set(item.attrs) <= {table.hash_key_attr, table.range_key_attr}:
            return prior[1]
        result = validate(self)
        text = getattr(self.expression, "__dict__", {}).get(SOURCE)
        if not item.attrs and text is not None and not reads_a_key(text, self.expression_attribute_names, table):
            first.prior = (same, result)
        return result

    init = UpdateExpressionValidator.__init__

    def remember_expression(self, expression, *args, **kwargs):
        self.expression = expression
        init(self, expression, *args, **kwargs)

    UpdateExpressionValidator.__init__ = remember_expression
    UpdateExpressionValidator.validate = validate_once

    # The first validation's result is for the same update only: creating the
    # item between the two validations can raise, and a thread serves many
    # requests, so nothing is kept past the update that made it.
    update_item = DynamoDBBackend.update_item

    def update_item_alone(self, *args, **kwargs):
        first.prior = None
        try:
            return update_item(self, *args, **kwargs)
        finally:
            first.prior = None

    DynamoDBBackend.update_item = update_item_alone


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

    It also counts DynamoDB requests by operation, and by the SDK's app name
    (`app/<name>` in its user agent) so a test can count its own client's calls
    while other tests run; GET /_flashcart/stats answers the counts as JSON (the
    flash-sale benchmark reads them to report DynamoDB calls per checkout)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.count_lock = threading.Lock()  # counting never waits behind a DynamoDB request
        self.counts = {}
        self.by_app = {}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == STATS_PATH and environ.get("REQUEST_METHOD") == "GET":
            with self.count_lock:
                stats = {"dynamodb": dict(self.counts), "by_app": {a: dict(c) for a, c in self.by_app.items()}}
                body = json.dumps(stats).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        operation = target.split(".", 1)[-1]
        app = APP_NAME.search(environ.get("HTTP_X_AMZ_USER_AGENT", ""))
        with self.count_lock:
            self.counts[operation] = self.counts.get(operation, 0) + 1
            if app:
                per_app = self.by_app.setdefault(app.group(1), {})
                per_app[operation] = per_app.get(operation, 0) + 1
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
    parser.add_argument("--unpatched", action="store_true", help="moto as released (for test_emulator.py)")
    args = parser.parse_args()

    if not args.unpatched:
        _patch_transactions()
        _patch_parsing()
        _patch_validation()
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
