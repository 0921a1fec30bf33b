"""Per-execution callback secrets. The engine gets the secret (in the webhook
headers); the store keeps only its SHA-256, so a leaked store cannot forge
callbacks. A secret has 256 random bits, so a fast hash is enough."""

import hashlib
import hmac
import secrets

HEADER = "X-St2bridge-Secret"


def new_secret():
    return secrets.token_urlsafe(32)


def hash_secret(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(secret, secret_hash):
    """Constant-time comparison of a presented secret with the stored hash."""
    if not secret or not secret_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), secret_hash)
