"""The API as a WSGI application: routing, authentication, JSON in and out,
and the bridge's errors as HTTP statuses.

Every answer is JSON; an error is `{"error": ONE LINE, "exit_code": N}` with
the CLI's message and exit code, and the status that code means:
400 bad input, 401 no or unknown key, 403 read-only key, 404 unknown,
405 wrong method, 409 conflict with the current state (or refused by the
engine), 411/413 body framing and size, 503 store or engine unavailable.
Nothing is changed by a request that is answered with an error, except where
the CLI would also keep a record (a submit the engine rejected is closed as
failed).
"""

import json
import logging
import re
import time
import urllib.parse

from st2bridge import errors
from st2bridge.api import auth
from st2bridge.text import one_line
from st2bridge.wsgi import status_line

LOG = logging.getLogger("st2bridge.api")

HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
]
ID = r"([A-Za-z0-9][A-Za-z0-9_.-]{0,127})"


class HttpError(errors.BridgeError):
    """A request the HTTP layer refuses (framing, size): the CLI's usage code."""

    exit_code = errors.EXIT_USAGE

    def __init__(self, status, message, headers=()):
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


_EXIT_STATUS = {
    errors.EXIT_USAGE: 400,
    errors.EXIT_ENGINE_UNAVAILABLE: 503,
    errors.EXIT_STORE_UNAVAILABLE: 503,
    errors.EXIT_NOT_FOUND: 404,
    errors.EXIT_CONFLICT: 409,
    errors.EXIT_ENGINE_REJECTED: 409,
    errors.EXIT_FAILED: 409,
}


def http_status(exc):
    """The HTTP status an error maps to (its exit code's meaning)."""
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, auth.Unauthorized):
        return 401
    if isinstance(exc, auth.Forbidden):
        return 403
    if isinstance(exc, (errors.EngineServerError, errors.EngineAuthError)):
        return 503  # the engine's trouble, or the bridge's credentials: not the caller's
    if isinstance(exc, errors.StoreError) and not isinstance(exc, errors.StoreVersionMismatch):
        return 503
    if isinstance(exc, errors.StoreVersionMismatch):
        return 503
    return _EXIT_STATUS.get(exc.exit_code, 409)


class Request:
    def __init__(self, environ, params, max_body):
        self.environ = environ
        self.params = params
        self.max_body = max_body
        self.key = None  # the API key record, once authenticated
        self._body = None
        self.query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)

    def header(self, name):
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    def body(self):
        """The raw body (read once; framing and size checked)."""
        if self._body is None:
            self._body = self._read()
        return self._body

    def json(self, required=True):
        """The body as a JSON object ({} when empty and not required)."""
        raw = self.body()
        if not raw:
            if required:
                raise errors.InputError("the request needs a JSON object as its body")
            return {}
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError:
            raise errors.InputError("the request body is not UTF-8") from None
        except RecursionError:
            raise errors.InputError(
                "the request body is not valid JSON: nested too deeply"
            ) from None
        except ValueError as exc:
            raise errors.InputError("the request body is not valid JSON: %s" % exc) from None
        if not isinstance(value, dict):
            raise errors.InputError("the request body must be a JSON object")
        return value

    def _read(self):
        if not self.environ.get("CONTENT_LENGTH") and "chunked" in (
            self.environ.get("HTTP_TRANSFER_ENCODING") or ""
        ):
            raise HttpError(411, "send the body with a Content-Length (not chunked)")
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(411, "Content-Length is not a number") from None
        if length < 0:
            raise HttpError(411, "Content-Length is negative")
        if length > self.max_body:
            raise HttpError(413, "the request body is over %d bytes" % self.max_body)
        return self.environ["wsgi.input"].read(length) if length else b""


def _no_constant(name):
    raise ValueError("%s is not a JSON number" % name)


class Route:
    def __init__(self, method, pattern, handler, write=False, public=False):
        self.method = method
        self.pattern = re.compile("^" + pattern + "$")
        self.handler = handler
        self.write = write
        self.public = public


def make_app(store, routes, *, max_body=1024 * 1024, observers=()):
    """A WSGI application over `routes`. A handler gets the Request and
    returns (status, JSON-able body[, extra headers]) or a Stream."""

    def app(environ, start_response):
        started = time.monotonic()
        status, body, headers = _dispatch(store, routes, max_body, environ)
        for observe in observers:
            observe(environ, status, time.monotonic() - started)
        if isinstance(body, Stream):
            start_response("200 OK", body.headers + HEADERS)
            return body.chunks
        payload = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        headers = _total_timing(headers, started)
        start_response(
            status_line(status),
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
            + HEADERS
            + headers,
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else payload]

    return app


class Stream:
    """A streamed answer (Server-Sent Events): headers and an iterator of bytes."""

    def __init__(self, headers, chunks):
        self.headers = headers
        self.chunks = chunks


def _dispatch(store, routes, max_body, environ):
    path = environ.get("PATH_INFO") or "/"
    method = environ.get("REQUEST_METHOD", "")
    allowed = []
    for route in routes:
        match = route.pattern.match(path)
        if not match:
            continue
        if route.method != method and not (method == "HEAD" and route.method == "GET"):
            allowed.append(route.method)
            continue
        request = Request(environ, match.groups(), max_body)
        try:
            if not route.public:
                request.key = auth.authenticate(store, environ, write=route.write)
            answer = route.handler(request)
        except errors.BridgeError as exc:
            status = http_status(exc)
            if status >= 500:
                LOG.warning("%s %s: %d %s", method, path, status, one_line(exc))
            return (
                status,
                {"error": one_line(exc), "exit_code": exc.exit_code},
                getattr(exc, "headers", []) + _auth_headers(status),
            )
        except Exception:  # a bug: logged with its traceback, never sent
            LOG.exception("%s %s failed", method, path)
            return 500, {"error": "internal error (see the API's log)", "exit_code": 1}, []
        if isinstance(answer, Stream):
            return 200, answer, []
        status, body, *extra = answer
        return status, body, extra[0] if extra else []
    if allowed:
        return (
            405,
            {"error": "use %s" % " or ".join(sorted(set(allowed))), "exit_code": 2},
            [("Allow", ", ".join(sorted(set(allowed))))],
        )
    return 404, {"error": "no such endpoint: %s" % path[:200], "exit_code": 5}, []


def _total_timing(headers, started):
    """A handler that reports its engine time (Server-Timing) gets the total
    beside it: request read to answer ready, so the bridge's own share of a
    request is total - engine (what the benchmark measures)."""
    out = []
    for name, value in headers:
        if name == "Server-Timing":
            value += ", total;dur=%.3f" % ((time.monotonic() - started) * 1000)
        out.append((name, value))
    return out


def _auth_headers(status):
    return [("WWW-Authenticate", 'Bearer realm="st2bridge"')] if status == 401 else []
