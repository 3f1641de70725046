"""The exceptions of `make contract` narrower than a status code (ADR 0011).

schemathesis.toml holds the exceptions where a whole status is decided by stored
state. The ones here excuse one exact answer (status, error code, field, reason)
on named operations for one check, and say why: the answer depends on something
docs/openapi.yaml cannot state (a cursor the server issued, a rule between two
fields) or is a known defect of the code, named so it can be fixed and its entry
removed. Any other answer still fails the run. At the end of each run this file
prints how often each exception was used; one never used is stale.
"""

import atexit
import re
import sys
from dataclasses import dataclass, field

import schemathesis


@dataclass(frozen=True)
class Excused:
    """One answer Schemathesis counts as a failure that the contract excuses."""

    why: str
    operations: tuple[str, ...]
    check: str
    status: int
    error: str
    # details.field must be one of these (None: any field)
    fields: tuple[str, ...] | None = None
    # details.reason must match this (re.fullmatch; None: any reason)
    reason: str | None = None
    used: list[int] = field(default_factory=lambda: [0])

    def covers(self, check: str, operation: str, status: int, body: object) -> bool:
        if check != self.check or operation not in self.operations or status != self.status:
            return False
        if not isinstance(body, dict) or body.get("error") != self.error:
            return False
        details = body.get("details")
        details = details if isinstance(details, dict) else {}
        if self.fields is not None and details.get("field") not in self.fields:
            return False
        if self.reason is not None:
            reason = details.get("reason")
            if not isinstance(reason, str) or not re.fullmatch(self.reason, reason):
                return False
        return True


EXCUSED = (
    Excused(
        why="A cursor is valid only if this endpoint issued it (it encodes a stored key); "
        "a generated one, however well formed, is 400 invalid_request on cursor.",
        operations=("GET /products", "GET /admin/audit", "GET /admin/feeds"),
        check="positive_data_acceptance",
        status=400,
        error="invalid_request",
        fields=("cursor",),
    ),
    Excused(
        why="Rules between fields, which JSON Schema cannot state (the spec says them in words): "
        "ends_at after starts_at and in the future, per_user_limit and shards at most quantity.",
        operations=("POST /admin/flash-sales",),
        check="positive_data_acceptance",
        status=400,
        error="invalid_request",
        fields=("ends_at", "per_user_limit", "shards"),
        reason="must be after starts_at|must be in the future|must be from 1 to the sale's quantity"
        "|must not exceed quantity \\(every shard holds at least one unit\\)",
    ),
    Excused(
        why="No SKU may appear in two lines of a cart, a rule JSON Schema cannot state "
        "(uniqueItems compares whole lines, not their SKUs); the spec says it in words.",
        operations=("POST /checkout",),
        check="positive_data_acceptance",
        status=400,
        error="invalid_request",
        fields=tuple(f"items[{i}].sku" for i in range(20)),
        reason="appears in two lines; put the whole quantity in one line",
    ),
    Excused(
        why="Whether a URL can ever be fetched (its scheme, port, credentials, literal address) "
        "is the SSRF rules' to say (ADR 0025), not a pattern's; the spec says them in words.",
        operations=("PUT /partner/fetch-profile", "PUT /admin/partners/{partner_id}/fetch-profile"),
        check="positive_data_acceptance",
        status=422,
        error="rule_violation",
        fields=("url",),
    ),
    Excused(
        why="A fetch profile's rules JSON Schema cannot state: a string that parses as an "
        "absolute URL (WHATWG parsing), a header name the fetch does not set itself, and a "
        "secret for an authentication that needs one when none is stored for the same origin "
        "and use (stored state).",
        operations=("PUT /partner/fetch-profile", "PUT /admin/partners/{partner_id}/fetch-profile"),
        check="positive_data_acceptance",
        status=400,
        error="invalid_request",
        fields=("url", "auth.header_name", "auth.secret"),
        reason="must be an absolute URL, such as https://example.com/feed.csv"
        "|names a header the fetch sets itself; use another"
        "|is required: auth type (basic|bearer|header) needs one and none is set yet"
        "|is required: the URL's origin or the authentication changed, and the secret set "
        "for the old one is not sent to the new one",
    ),
)


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure but the excused ones."""
    try:
        body = response.json()
    except ValueError:
        return True
    operation = case.operation.label
    for excused in EXCUSED:
        if any(excused.covers(check, operation, response.status_code, body) for check in failure.checks):
            excused.used[0] += 1
            return False
    return True


@atexit.register
def _report() -> None:
    lines = [f"  {e.used[0]:>4}  {', '.join(e.operations)}: {e.check} {e.status} {e.error}" for e in EXCUSED]
    print("contract: answers excused by infra/local/contract/hooks.py (count, where, what)", file=sys.stderr)
    print("\n".join(lines), file=sys.stderr)
