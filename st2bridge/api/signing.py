"""The webhook signature, both ends of it (the notifier signs, receivers verify).

    X-St2bridge-Timestamp: Unix seconds
    X-St2bridge-Signature: sha256=HEX
    HEX = HMAC-SHA256(secret, TIMESTAMP + "." + BODY)

A receiver checks the signature and that the timestamp is recent (a replayed
request carries an old one); X-St2bridge-Delivery names the notification, so a
receiver that got one twice (delivery is at least once) can tell.
"""

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-St2bridge-Timestamp"
SIGNATURE_HEADER = "X-St2bridge-Signature"
DELIVERY_HEADER = "X-St2bridge-Delivery"
EVENT_HEADER = "X-St2bridge-Event"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign(secret: str, body: bytes, now: float | None = None) -> dict:
    """The signature headers of one request."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str,
    timestamp: str | None,
    body: bytes,
    given: str | None,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when `given` signs `body` with `secret` and `timestamp` lies
    within `tolerance` seconds of now."""
    if not timestamp or not given:
        return False
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    if age > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), given)
