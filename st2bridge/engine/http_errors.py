"""Turning HTTP failures into what the bridge reports: the engine's own
message for an error answer, and a short reason (and whether the request may
have reached the engine) for a connection that failed."""

import http.client
import re
import socket
import ssl

from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from st2bridge.engine.transport import InvalidHeader
from st2bridge.errors import EngineAuthError, EngineBadRequest, EngineConflict, EngineNotFound
from st2bridge.text import one_line

STATUS_ERRORS = {
    400: EngineBadRequest,
    401: EngineAuthError,
    403: EngineAuthError,
    404: EngineNotFound,
    409: EngineConflict,
}

_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*")


def fault(resp):
    """Mistral's faultstring (or another known error field), on one line."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    detail = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):  # keystonemiddleware's 401
            body = body["error"]
        detail = next(
            (
                body[k]
                for k in ("faultstring", "message", "description", "title")
                if isinstance(body.get(k), str) and body[k].strip()
            ),
            None,
        )
    elif resp.text and not resp.text.lstrip().startswith("<"):
        detail = resp.text[:4096]  # plain text, not an HTML error page
    # Mistral refuses a missing or invalid Keystone token with an HTML page
    # and puts its reason in this header.
    detail = detail or resp.headers.get("Server-Error-Message")
    return one_line(detail, first_line=True, limit=300) if detail else (resp.reason or "no details")


def _causes(exc):
    """exc and every exception it wraps (args, .reason, __cause__, __context__)."""
    seen, todo = [], [exc]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if isinstance(e, BaseException) and not any(e is s for s in seen):
            seen.append(e)
            todo.extend(a for a in e.args if isinstance(a, BaseException))
            todo.extend((getattr(e, "reason", None), e.__cause__, e.__context__))
    return seen


def unreachable(exc, connect_timeout, read_timeout):
    """(short reason, whether the request may have been sent, retryable) for
    what st2bridge.engine.transport raises (urllib3's errors, bare or wrapped)."""
    chain = _causes(exc)

    def has(kind):
        return any(isinstance(e, kind) for e in chain)

    if has(SSLError) or has(ssl.SSLError):
        # A certificate problem does not go away by retrying.
        return "TLS handshake failed (%s)" % _innermost(chain), False, False
    if has(ConnectionRefusedError):
        return "connection refused", False, True
    if has(socket.gaierror) or has(NameResolutionError):
        return "cannot resolve the host name", False, True
    # urllib3's NewConnectionError is a kind of ConnectTimeoutError.
    if any(
        isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError) for e in chain
    ):
        return "no connection within %g s" % connect_timeout, False, True
    if has(NewConnectionError):
        return "cannot connect (%s)" % _innermost(chain), False, True
    if has(ReadTimeoutError):
        return "no answer within %g s (read timeout)" % read_timeout, True, True
    if has(http.client.RemoteDisconnected):
        return "the connection closed without an answer", True, True
    if has(ConnectionResetError):
        return "the connection was reset", True, True
    if has(http.client.IncompleteRead) or any(_body_broken(e) for e in chain):
        return "the answer was cut short", True, True
    if has(InvalidHeader):
        return "invalid header value", False, False  # its text may quote it
    return _innermost(chain), True, True


def _body_broken(exc):
    # urllib3's ProtocolError("Connection broken: ...") comes while the body is
    # read; "Connection aborted." before any answer.
    return isinstance(exc, ProtocolError) and str(exc.args[0] if exc.args else "").startswith(
        ("Connection broken", "Response ended prematurely")
    )


def _innermost(chain):
    # urllib3 prefixes messages with an object repr: "<...HTTPConnection
    # object at 0x7f..>: Failed to establish a new connection: ...".
    text = _OBJECT_REPR.sub("", str(chain[-1]))
    return one_line(text, first_line=True, limit=160) or type(chain[-1]).__name__
