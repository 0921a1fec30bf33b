"""Who is logged in to the web view, and the checks every POST passes.

A user logs in by pasting an API key (`st2bridge apikey create`). The key
is checked against the API's key store and then forgotten: the session
keeps the key's name and its SHA-256 (what the store is asked by), never
the key. The browser gets a random session id in a cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS); the server keeps only the id's
SHA-256, so a dump of this process's memory holds no usable cookie either.
Sessions live in the tracker's memory: a restart logs everybody out.

Every request re-reads the key from the store, so revoking it (or making
it read-only) takes effect at once. Each session has a CSRF token that
every POST must carry in the form field `csrf`; a POST must also come from
this site (Origin, else Referer, naming the Host it was sent to). The login
form, before there is a session, carries a token that must match a cookie
set with the form (double submit).
"""

import hashlib
import hmac
import http.cookies
import secrets
import time
import urllib.parse

from st2bridge import concurrency, errors
from st2bridge.api import auth

SESSION_COOKIE = "st2bridge_session"
LOGIN_COOKIE = "st2bridge_login"
IDLE_SECONDS = 8 * 3600  # a session unused this long is gone
MAX_AGE_SECONDS = 24 * 3600  # and any session after this long
MAX_SESSIONS = 10000  # the oldest go first beyond this (each needs a valid key)
MAX_FORM = 16 * 1024


class Refused(errors.BridgeError):
    """A POST that fails the CSRF or origin check, or a key that may not (HTTP 403)."""

    exit_code = errors.EXIT_USAGE


class Session:
    def __init__(self, key_name, key_hash, csrf, now):
        self.key_name = key_name
        self.key_hash = key_hash
        self.csrf = csrf
        self.created_at = now
        self.used_at = now
        self.read_only = True  # re-read from the store on every request
        self.flash = None  # one message for the next page (what an action did)


def _digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cookies(environ):
    jar = http.cookies.SimpleCookie()
    try:
        jar.load(environ.get("HTTP_COOKIE") or "")
    except http.cookies.CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def cookie_header(name, value, environ, max_age=None):
    """Set-Cookie for this site only: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    parts = ["%s=%s" % (name, value), "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append("Max-Age=%d" % max_age)
    if is_https(environ):
        parts.append("Secure")
    return ("Set-Cookie", "; ".join(parts))


def is_https(environ):
    return (
        environ.get("wsgi.url_scheme") == "https"
        or (environ.get("HTTP_X_FORWARDED_PROTO") or "").lower() == "https"
    )


class Sessions:
    """The logged-in sessions of one web view process."""

    def __init__(self, store, clock=time.time):
        self.store = store
        self.clock = clock
        self._by_hash = {}
        self._lock = concurrency.current().lock()

    def login(self, key):
        """(session id for the cookie, Session) for a valid key; Unauthorized otherwise."""
        key = (key or "").strip()
        if not key:
            raise auth.Unauthorized("paste an API key (st2bridge apikey create NAME)")
        record = auth.authenticate(self.store, {"HTTP_X_API_KEY": key}, write=False)
        now = self.clock()
        session_id = secrets.token_urlsafe(32)
        session = Session(record["name"], auth.key_hash(key), secrets.token_urlsafe(32), now)
        session.read_only = bool(record.get("read_only"))
        with self._lock:
            self._expire(now)
            if len(self._by_hash) >= MAX_SESSIONS:
                oldest = min(self._by_hash, key=lambda h: self._by_hash[h].used_at)
                del self._by_hash[oldest]
            self._by_hash[_digest(session_id)] = session
        return session_id, session

    def current(self, environ):
        """The request's Session, or None (no cookie, expired, key revoked)."""
        session_id = cookies(environ).get(SESSION_COOKIE)
        if not session_id or len(session_id) > 128:
            return None
        now = self.clock()
        with self._lock:
            session = self._by_hash.get(_digest(session_id))
            if session is None:
                return None
            if now - session.used_at > IDLE_SECONDS or now - session.created_at > MAX_AGE_SECONDS:
                del self._by_hash[_digest(session_id)]
                return None
            session.used_at = now
        record = self.store.api_key_by_hash(session.key_hash)
        if record is None:  # revoked since: logged out
            self.logout(environ)
            return None
        session.read_only = bool(record.get("read_only"))
        return session

    def logout(self, environ):
        session_id = cookies(environ).get(SESSION_COOKIE)
        if session_id:
            with self._lock:
                self._by_hash.pop(_digest(session_id), None)

    def count(self):
        return len(self._by_hash)

    def _expire(self, now):
        for h in [
            h
            for h, s in self._by_hash.items()
            if now - s.used_at > IDLE_SECONDS or now - s.created_at > MAX_AGE_SECONDS
        ]:
            del self._by_hash[h]


def read_form(environ):
    """The urlencoded body of a POST as {name: value} (first value of each)."""
    ctype = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Refused("a form post is expected (application/x-www-form-urlencoded)")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise errors.InputError("Content-Length is not a number") from None
    if not 0 <= length <= MAX_FORM:
        raise errors.InputError("the form is over %d bytes" % MAX_FORM)
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise errors.InputError("the form is not UTF-8") from None
    form = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def check_origin(environ):
    """Refused unless the POST says it comes from this site: its Origin (or,
    without one, its Referer) names the Host the request was sent to."""
    host = (environ.get("HTTP_HOST") or "").lower()
    origin = environ.get("HTTP_ORIGIN")
    source = origin if origin is not None else environ.get("HTTP_REFERER")
    if not source or source == "null":
        raise Refused("the request does not say which page it comes from (Origin or Referer)")
    if not host or urllib.parse.urlsplit(source).netloc.lower() != host:
        raise Refused("the request comes from another site (%s)" % source[:100])


def check_csrf(expected, given):
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Refused("the form is out of date or not from this site (CSRF token); reload the page")
