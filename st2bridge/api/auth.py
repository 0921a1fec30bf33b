"""API keys: made here, shown once, stored as their SHA-256 only.

A key is 256 random bits (so a plain hash is the right way to store it: no
password stretching needed). A request names its key in `X-Api-Key: KEY` or
`Authorization: Bearer KEY`; the store is asked by the key's hash, so there
is nothing to compare in Python and a revoked key stops working at once.
"""

import hashlib
import secrets

from st2bridge import errors

PREFIX = "st2b_"
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")


class Unauthorized(errors.BridgeError):
    """No key, or a key that is unknown or revoked (HTTP 401)."""

    exit_code = errors.EXIT_USAGE


class Forbidden(errors.BridgeError):
    """A read-only key asked to change something (HTTP 403)."""

    exit_code = errors.EXIT_USAGE


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise errors.InputError(
            "API key name %r: use 1-64 letters, digits and - _ . @" % (name[:70] if name else "")
        )
    return name


def create(store, name, read_only, now):
    """Make a key, store its hash; returns (key, record). The key is shown
    to the caller once and never again."""
    check_name(name)
    key = new_key()
    record = store.create_api_key(
        {"name": name, "key_hash": key_hash(key), "read_only": bool(read_only), "created_at": now}
    )
    return key, record


def key_of(environ) -> str | None:
    """The key a request carries, or None."""
    given = environ.get("HTTP_X_API_KEY")
    if given:
        return given.strip()
    header = environ.get("HTTP_AUTHORIZATION") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def authenticate(store, environ, write: bool):
    """The key record of the request; Unauthorized or Forbidden otherwise."""
    key = key_of(environ)
    if not key:
        raise Unauthorized("an API key is required (header X-Api-Key or Authorization: Bearer)")
    if len(key) > 256:
        raise Unauthorized("unknown or revoked API key")
    record = store.api_key_by_hash(key_hash(key))
    if record is None:
        raise Unauthorized("unknown or revoked API key")
    if write and record.get("read_only"):
        raise Forbidden("API key %s is read-only" % record["name"])
    return record
