"""Per-execution callback secrets. The engine gets the secret (in the webhook
headers); the store keeps only its SHA-256, so a leaked store cannot forge
callbacks. A secret has 256 random bits, so a fast hash is enough."""

import hashlib
import hmac
import re
import secrets

from st2bridge.callbacks.webhook import SECRET_HEADER
from st2bridge.redact import Redactor

# The header as text: a workflow that returns str(execution()) or fails with
# its params in the message ('X-St2bridge-Secret': 'abc', or "...": "abc").
_IN_TEXT = re.compile(r"(%s['\"]?\s*[:=]\s*['\"]?)([A-Za-z0-9_\-]+)" % SECRET_HEADER, re.IGNORECASE)


def new_secret():
    return secrets.token_urlsafe(32)


def hash_secret(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(secret, secret_hash):
    """Constant-time comparison of a presented secret with the stored hash."""
    if not secret or not secret_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), secret_hash)


# Workflow output and errors are stored as the engine gave them but for the
# callback secret: URL passwords in them are the workflow's business.
_REDACTOR = Redactor(urls=False, keys=[SECRET_HEADER], patterns=[_IN_TEXT])


def mask(value):
    """`value` (workflow output, an error text) with every callback secret
    replaced by ***: Mistral's execution() returns the execution's params,
    whose notify headers hold the secret, and a workflow may return them."""
    return _REDACTOR.values(value)
