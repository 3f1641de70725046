"""The peer for `make bench-cold-start`: what most Lambda shops would write for
GET /products/{sku} in Python 3 with boto3, run under the same Lambda Runtime
API as the Rust functions.

It is the handler plus the smallest runtime loop (the Runtime API's `next` and
`response` calls over urllib), so it starts no faster than on Lambda's Python
runtime, whose bootstrap does more: the comparison favours the peer.
"""

import json
import os
import urllib.request

import boto3  # imported at init, as a Lambda module does
from boto3.dynamodb.types import TypeDeserializer

TABLE = os.environ["CATALOG_TABLE"]
# built once per container, at init
dynamodb = boto3.client("dynamodb")
deserializer = TypeDeserializer()


def plain(value):
    """DynamoDB numbers come back as Decimal: integers here (money is minor units)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "to_integral_value"):
        return int(value)
    return value


def handler(event, _context):
    sku = event["pathParameters"]["sku"]
    out = dynamodb.get_item(
        TableName=TABLE,
        Key={"pk": {"S": f"PRODUCT#{sku}"}, "sk": {"S": "PRODUCT"}},
    )
    item = out.get("Item")
    if item is None:
        return {"statusCode": 404, "headers": {"content-type": "application/json"},
                "body": json.dumps({"error": "not_found"})}
    product = plain({k: deserializer.deserialize(v) for k, v in item.items()
                     if k not in ("pk", "sk", "gsi1pk", "gsi1sk")})
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(product)}


def main():
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    base = f"http://{api}/2018-06-01/runtime/invocation"
    while True:
        with urllib.request.urlopen(f"{base}/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        result = handler(event, None)
        answer = urllib.request.Request(
            f"{base}/{request_id}/response",
            data=json.dumps(result).encode(),
            method="POST",
        )
        urllib.request.urlopen(answer).read()


if __name__ == "__main__":
    main()
