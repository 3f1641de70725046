"""The launcher's patches change what moto costs, never what it answers.

Starts the emulator twice, patched and `--unpatched`, runs the same DynamoDB
and SQS calls against both and compares every answer (errors included) and the
state left behind. The calls cover what the patches touch: expressions reused
with other values, items created by an update, expressions that read a key,
transactions that commit, that are cancelled (with and without ALL_OLD), that
name an item twice or a missing table, whose other items are invalid, on a
table with a stream, and sends to a filling queue.

Run: .venv/bin/python infra/local/test_emulator.py   (`make test` runs it)
"""

import datetime
import os
import subprocess
import sys
import tempfile
import time
import unittest

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))


def start(*flags):
    port_file = tempfile.mktemp()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "emulator.py"), "--port", "0", "--port-file", port_file, *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # moto prints tracebacks for the malformed calls
    )
    for _ in range(300):
        if os.path.exists(port_file) and os.path.getsize(port_file):
            with open(port_file) as f:
                port = f.read().strip()
            os.remove(port_file)
            return proc, f"http://127.0.0.1:{port}"
        if proc.poll() is not None:
            raise RuntimeError("the emulator exited before it listened")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the emulator did not listen within 30 s")


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}),
    )


NAMED_BY_TIME = {"LatestStreamLabel", "LatestStreamArn"}


def timeless(value):
    if isinstance(value, dict):
        return {
            k: timeless(v) for k, v in value.items() if not isinstance(v, datetime.datetime) and k not in NAMED_BY_TIME
        }
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def answer(call, **kwargs):
    """What a call answered, without what differs between any two servers."""
    try:
        out = call(**kwargs)
        out.pop("ResponseMetadata", None)
        return ("ok", timeless(out))
    except ClientError as e:
        err = dict(e.response.get("Error", {}))
        return ("error", err, e.response.get("CancellationReasons"), e.response.get("Item"))


S = lambda v: {"S": v}  # noqa: E731
N = lambda v: {"N": str(v)}  # noqa: E731


def key(pk, sk="A"):
    return {"pk": S(pk), "sk": S(sk)}


def dynamodb_calls(db):
    """Every call, as (name, answer); run in the same order on both servers."""
    out = []

    def call(name, fn, **kwargs):
        out.append((name, answer(fn, **kwargs)))

    call(
        "create",
        db.create_table,
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    counter = dict(
        TableName="t",
        UpdateExpression="ADD #n :one",
        ConditionExpression="attribute_not_exists(#n) OR #n < :max",
        ExpressionAttributeNames={"#n": "n"},
        ReturnValues="ALL_NEW",
    )
    # the same expressions with other values: a cache keyed without them would answer wrongly
    for i, limit in enumerate([5, 2, 2, 2, 100, 1]):
        call(f"counter {i}", db.update_item, Key=key("c"), ExpressionAttributeValues={":one": N(1), ":max": N(limit)}, **counter)
    for i in range(3):  # items created by an update, one per key
        call(f"new counter {i}", db.update_item, Key=key(f"new{i}"), ExpressionAttributeValues={":one": N(i + 1), ":max": N(9)}, **counter)
    # updates that read a key attribute, on a new item and an existing one
    for pk in ("reads-key", "reads-key"):
        call(
            f"reads key {pk}",
            db.update_item,
            TableName="t",
            Key=key(pk),
            UpdateExpression="SET copy = if_not_exists(#pk, :d), other = if_not_exists(other, :d)",
            ExpressionAttributeNames={"#pk": "pk"},
            ExpressionAttributeValues={":d": S("default")},
            ReturnValues="ALL_NEW",
        )
    call("missing attribute", db.update_item, TableName="t", Key=key("fresh"), UpdateExpression="SET x = nothing + :one", ExpressionAttributeValues={":one": N(1)})
    call("get fresh", db.get_item, TableName="t", Key=key("fresh"))
    call("type mismatch", db.update_item, TableName="t", Key=key("c"), UpdateExpression="SET n = :s + :one", ExpressionAttributeValues={":s": S("x"), ":one": N(1)})
    call("bad syntax", db.update_item, TableName="t", Key=key("c"), UpdateExpression="SET = :one", ExpressionAttributeValues={":one": N(1)})
    call("bad condition", db.update_item, TableName="t", Key=key("c"), UpdateExpression="SET n = :one", ConditionExpression="n <<< :one", ExpressionAttributeValues={":one": N(1)})
    call("updates a key", db.update_item, TableName="t", Key=key("c"), UpdateExpression="SET pk = :v", ExpressionAttributeValues={":v": S("x")})
    for i, expected in enumerate(["no", "yes", "yes"]):
        call(
            f"put if {i}",
            db.put_item,
            TableName="t",
            Item={**key("p"), "v": S(expected)},
            ConditionExpression="attribute_not_exists(pk) OR v = :e",
            ExpressionAttributeValues={":e": S(expected)},
        )

    stock = {**key("stock"), "left": N(3)}
    call("put stock", db.put_item, TableName="t", Item=stock)

    def take(q, buyer, record):
        return [
            {
                "Update": {
                    "TableName": "t",
                    "Key": key("stock"),
                    "UpdateExpression": "SET #left = #left - :q",
                    "ConditionExpression": "#left >= :q",
                    "ExpressionAttributeNames": {"#left": "left"},
                    "ExpressionAttributeValues": {":q": N(q)},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": {
                    "TableName": "t",
                    "Key": key(f"buyer-{buyer}"),
                    "UpdateExpression": "ADD bought :q",
                    "ConditionExpression": "attribute_not_exists(bought) OR bought <= :max",
                    # a limit of one: bought <= 1 - q
                    "ExpressionAttributeValues": {":q": N(q), ":max": N(1 - q)},
                }
            },
            {
                "Put": {
                    "TableName": "t",
                    "Item": {**key(f"record-{record}"), "q": N(q)},
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {"ConditionCheck": {"TableName": "t", "Key": key("p"), "ConditionExpression": "attribute_exists(v)"}},
        ]

    plan = [
        ("commits", take(1, "a", "r1")),
        ("commits again", take(1, "b", "r2")),
        ("record exists", take(1, "c", "r1")),
        ("not enough stock", take(2, "d", "r3")),
        ("buyer limit", take(1, "a", "r4")),
        ("everything fails", take(5, "a", "r1")),
        ("last unit", take(1, "e", "r5")),
        ("sold out", take(1, "f", "r6")),
        ("names an item twice", take(1, "g", "r7") + [take(1, "g", "r7")[1]]),
        ("missing table", take(1, "h", "r8")[:1] + [{"Put": {"TableName": "nope", "Item": key("x")}}]),
        (
            "update fails after a passing condition",
            take(1, "i", "r9")[1:3]
            + [{"Update": {"TableName": "t", "Key": key("p"), "UpdateExpression": "SET v = v + :one", "ExpressionAttributeValues": {":one": N(1)}}}],
        ),
        (
            "delete and condition check",
            [
                {"Delete": {"TableName": "t", "Key": key("record-r2"), "ConditionExpression": "q = :q", "ExpressionAttributeValues": {":q": N(1)}}},
                {"ConditionCheck": {"TableName": "t", "Key": key("nothing"), "ConditionExpression": "attribute_exists(pk)"}},
            ],
        ),
    ]
    # A failing condition does not hide the other items' errors: moto still
    # applies them, and a validation error answers for the whole transaction.
    fails = {"ConditionCheck": {"TableName": "t", "Key": key("nothing"), "ConditionExpression": "attribute_exists(pk)"}}
    plan += [
        ("fails, and an update mismatches types", [fails, {"Update": {"TableName": "t", "Key": key("p"), "UpdateExpression": "SET v = v + :one", "ExpressionAttributeValues": {":one": N(1)}}}]),
        ("fails, and a delete lacks its sort key", [fails, {"Delete": {"TableName": "t", "Key": {"pk": S("p")}}}]),
        ("fails, and a put's key has the wrong type", [fails, {"Put": {"TableName": "t", "Item": {"pk": N(1), "sk": S("A")}}}]),
        ("fails, and an update sets a key", [fails, {"Update": {"TableName": "t", "Key": key("p"), "UpdateExpression": "SET sk = :v", "ExpressionAttributeValues": {":v": S("B")}}}]),
        ("a put lacks its sort key", [{"Put": {"TableName": "t", "Item": {"pk": S("half")}}}]),
        ("a delete lacks its sort key", [{"Delete": {"TableName": "t", "Key": {"pk": S("half")}}}]),
        # the same item, once by its key and once by its key and another attribute
        (
            "an item twice, once with an extra key attribute",
            [
                {"Put": {"TableName": "t", "Item": {**key("p"), "v": S("again")}}},
                {"ConditionCheck": {"TableName": "t", "Key": {**key("p"), "x": S("1")}, "ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": S("again")}}},
            ],
        ),
    ]
    for name, items in plan:
        call(f"transaction: {name}", db.transact_write_items, TransactItems=items)
    # an update whose item cannot be created (key of the wrong type), then the same expression on a good key
    for pk in (N(7), S("after-bad-key")):
        call(f"update creating {pk}", db.update_item, TableName="t", Key={"pk": pk, "sk": S("A")}, UpdateExpression="SET a = :v", ExpressionAttributeValues={":v": S("x")}, ReturnValues="ALL_NEW")
    call(
        "query with a filter",
        db.query,
        TableName="t",
        KeyConditionExpression="pk = :pk",
        FilterExpression="n > :min",
        ExpressionAttributeValues={":pk": S("c"), ":min": N(1)},
    )
    call("state", db.scan, TableName="t")

    # a cancelled transaction leaves no stream records behind
    call(
        "create streamed",
        db.create_table,
        TableName="s",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    call("put streamed", db.put_item, TableName="s", Item={"pk": S("a"), "v": N(1)})
    for name, items in [
        ("streamed, cancelled", [{"Put": {"TableName": "s", "Item": {"pk": S("b")}}}, {"Update": {"TableName": "s", "Key": {"pk": S("a")}, "UpdateExpression": "SET v = :v", "ConditionExpression": "v = :old", "ExpressionAttributeValues": {":v": N(2), ":old": N(9)}}}]),
        ("streamed, committed", [{"Put": {"TableName": "s", "Item": {"pk": S("c")}}}, {"Delete": {"TableName": "s", "Key": {"pk": S("a")}}}]),
    ]:
        call(f"transaction: {name}", db.transact_write_items, TransactItems=items)
    call("streamed state", db.scan, TableName="s")
    out.append(("stream records", stream_events(db)))
    return out


def stream_events(db):
    arn = db.describe_table(TableName="s")["Table"]["LatestStreamArn"]
    streams = boto3.client(
        "dynamodbstreams",
        endpoint_url=db.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return [(r["eventName"], r["dynamodb"].get("Keys")) for r in streams.get_records(ShardIterator=it)["Records"]]


def sqs_calls(sqs):
    out = []
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    fifo = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for i in range(20):
        sent = sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        out.append(("send", sorted(sent)))
    for i in range(3):  # content-based deduplication: the same body twice is one message
        sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
    attrs = ["ApproximateNumberOfMessages", "FifoQueue", "ContentBasedDeduplication"]
    out.append(("attributes", sqs.get_queue_attributes(QueueUrl=url, AttributeNames=attrs[:1])["Attributes"]))
    out.append(("fifo attributes", sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=attrs)["Attributes"]))
    return out


class PatchesKeepMotoAnswers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers = [start(), start("--unpatched")]

    @classmethod
    def tearDownClass(cls):
        for proc, _ in cls.servers:
            proc.terminate()
            proc.wait()

    def both(self, run, service):
        (_, patched), (_, plain) = self.servers
        return run(client(service, patched)), run(client(service, plain))

    def test_dynamodb_answers_and_state_match(self):
        patched, plain = self.both(dynamodb_calls, "dynamodb")
        self.assertEqual([n for n, _ in patched], [n for n, _ in plain])
        for (name, mine), (_, theirs) in zip(patched, plain):
            with self.subTest(call=name):
                self.assertEqual(mine, theirs)
        # the scenario exercises what it claims: commits, cancellations, errors
        kinds = {name: a[0] for name, a in patched}
        for ok in ("commits", "commits again", "last unit"):
            self.assertEqual(kinds[f"transaction: {ok}"], "ok", ok)
        for cancelled in ("record exists", "not enough stock", "buyer limit", "sold out"):
            self.assertEqual(dict(patched)[f"transaction: {cancelled}"][1]["Code"], "TransactionCanceledException", cancelled)
        self.assertEqual(kinds["counter 2"], "error")
        self.assertEqual([e for e, _ in dict(patched)["stream records"]], ["INSERT", "INSERT", "REMOVE"])

    def test_sqs_answers_match(self):
        patched, plain = self.both(sqs_calls, "sqs")
        self.assertEqual(patched, plain)
        self.assertEqual(dict(patched)["attributes"], {"ApproximateNumberOfMessages": "20"})


if __name__ == "__main__":
    unittest.main(verbosity=2)
