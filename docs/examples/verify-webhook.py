#!/usr/bin/env python3
"""Verifies a webhook delivery of ses-webhook (Standard Webhooks signatures), standard library only.

In a receiver, call `verify` with the secret, the three `webhook-*` headers and the body exactly
as received (bytes, before any JSON parsing), and answer 2xx only when it returns:

    envelope = verify(secret, headers["webhook-id"], headers["webhook-timestamp"],
                      headers["webhook-signature"], raw_body)

Run as a program, it verifies one delivery: the secret from WEBHOOK_SECRET, the headers from
WEBHOOK_ID, WEBHOOK_TIMESTAMP and WEBHOOK_SIGNATURE, the body from standard input. It prints the
envelope's id and type and exits 0 when the delivery is genuine, else prints why and exits 1.
See docs/delivery.md.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import sys
import time

SECRET_PREFIX = "whsec_"
# A delivery whose timestamp is further than this from now (either way) is refused: a captured
# request cannot be replayed later.
TOLERANCE_SECS = 5 * 60


class VerificationError(Exception):
    """The delivery is not genuine (or not fresh); the message says why."""


def verify(secret, msg_id, timestamp, signature_header, body, *, now=None, tolerance=TOLERANCE_SECS):
    """Checks one delivery and returns its envelope (a dict) when genuine.

    secret: the sink's `whsec_...` secret; msg_id, timestamp, signature_header: the values of
    the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers; body: the request
    body as received (bytes). Raises VerificationError otherwise.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise VerificationError("the secret does not start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error as e:
        raise VerificationError(f"the secret is not whsec_ and base64: {e}") from None
    if not msg_id or not timestamp or not signature_header:
        raise VerificationError("a webhook-id, webhook-timestamp or webhook-signature header is missing")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise VerificationError(f"webhook-timestamp is not a number of seconds: {timestamp!r}")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        raise VerificationError(
            f"webhook-timestamp {timestamp} is more than {tolerance} seconds from now ({int(now)})"
        )

    # The signed content: id, timestamp (as sent) and body, joined by dots.
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # Several signatures may be sent, separated by spaces (while a secret is being rotated);
    # one valid `v1` signature is enough.
    genuine = False
    for candidate in signature_header.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            genuine = True
    if not genuine:
        raise VerificationError("no signature matches (wrong secret, or the body or headers were changed)")

    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise VerificationError(f"the body is not JSON: {e}") from None
    if not isinstance(envelope, dict) or envelope.get("id") != msg_id:
        raise VerificationError("the envelope's id is not the webhook-id")
    return envelope


def main():
    env = os.environ.get
    body = sys.stdin.buffer.read()
    try:
        envelope = verify(
            env("WEBHOOK_SECRET", ""),
            env("WEBHOOK_ID", ""),
            env("WEBHOOK_TIMESTAMP", ""),
            env("WEBHOOK_SIGNATURE", ""),
            body,
        )
    except VerificationError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    print(envelope["id"], envelope.get("type"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
