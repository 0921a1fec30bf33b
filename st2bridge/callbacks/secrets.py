"""Per-execution callback secrets. The engine gets the secret (in the webhook
headers); the store keeps only its SHA-256, so a leaked store cannot forge
callbacks. A secret has 256 random bits, so a fast hash is enough."""

import hashlib
import hmac
import re
import secrets

HEADER = "X-St2bridge-Secret"
MASK = "***"
# The header as text: a workflow that returns str(execution()) or fails with
# its params in the message ('X-St2bridge-Secret': 'abc', or "...": "abc").
_IN_TEXT = re.compile(r"(%s['\"]?\s*[:=]\s*['\"]?)([A-Za-z0-9_\-]+)" % HEADER, re.IGNORECASE)


def new_secret():
    return secrets.token_urlsafe(32)


def hash_secret(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(secret, secret_hash):
    """Constant-time comparison of a presented secret with the stored hash."""
    if not secret or not secret_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def mask(value):
    """`value` (workflow output, an error text) with every callback secret
    replaced by ***: Mistral's execution() returns the execution's params,
    whose notify headers hold the secret, and a workflow may return them."""
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and k.lower() == HEADER.lower() and v else mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str) and HEADER.lower() in value.lower():
        return _IN_TEXT.sub(lambda m: m.group(1) + MASK, value)
    return value
