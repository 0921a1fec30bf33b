"""The web view of executions as a WSGI application (read-only).

    GET /                          -> /executions
    GET /executions?status=S&workflow=W    the list, newest first
    GET /executions/<id>           one execution: graph, states, data
    GET /events                    events posted to st2bridge-api, linked to their executions
    GET /api/executions?status=&workflow=  JSON the list page polls
    GET /api/executions/<id>       JSON the execution page polls (status, task states)
    GET /static/app.js, /static/style.css, /v1/health

Only GET and HEAD (405 otherwise): nothing here changes anything. With a
token configured every path but /v1/health needs it: `Authorization: Bearer
TOKEN`, or `?token=TOKEN` once, which sets an HttpOnly cookie and redirects to
the same page without it. The Content-Security-Policy allows no inline
script or style and no other origin.
"""

import hmac
import http.cookies
import json
import logging
import re
import time
import urllib.parse

from st2bridge import errors
from st2bridge import status as st
from st2bridge.web import data, pages
from st2bridge.web import events as event_pages

LOG = logging.getLogger("st2bridge.web")
COOKIE = "st2bridge_web"
DETAIL = re.compile(r"^/(api/)?executions/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$")
REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
]
STATIC = {
    "/static/app.js": ("application/javascript; charset=utf-8", pages.JS),
    "/static/style.css": ("text/css; charset=utf-8", pages.CSS),
}
LIST_LIMIT = 200


def make_app(store, engine, token=None, clock=time.time):
    def app(environ, start_response):
        try:
            status, ctype, body, headers = _route(store, engine, token, clock, environ)
        except Exception:  # never a traceback to the browser
            LOG.exception(
                "web view: %s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            status, ctype, body, headers = (
                500,
                "text/plain; charset=utf-8",
                "internal error (see the tracker's log)",
                [],
            )
        payload = body.encode("utf-8") if isinstance(body, str) else body
        start_response(
            "%d %s" % (status, REASONS[status]),
            [("Content-Type", ctype), ("Content-Length", str(len(payload)))]
            + SECURITY_HEADERS
            + headers,
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else payload]

    return app


def _html(status, body, headers=()):
    return status, "text/html; charset=utf-8", body, list(headers)


def _json(status, value):
    return status, "application/json", json.dumps(value, default=str), []


def _authorized(environ, token):
    header = environ.get("HTTP_AUTHORIZATION") or ""
    if header.startswith("Bearer ") and hmac.compare_digest(
        header[7:].strip().encode(), token.encode()
    ):
        return True
    cookies = http.cookies.SimpleCookie()
    try:
        cookies.load(environ.get("HTTP_COOKIE") or "")
    except http.cookies.CookieError:
        return False
    morsel = cookies.get(COOKIE)
    return bool(morsel) and hmac.compare_digest(morsel.value.encode(), token.encode())


def _route(store, engine, token, clock, environ):
    path = environ.get("PATH_INFO", "") or "/"
    method = environ.get("REQUEST_METHOD", "")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    first = lambda key: (query.get(key) or [""])[0].strip()  # noqa: E731
    if method not in ("GET", "HEAD"):
        return 405, "text/plain; charset=utf-8", "read-only: use GET", [("Allow", "GET, HEAD")]
    if path == "/v1/health":
        return _json(200, {"status": "ok"})
    if token:
        given = first("token")
        if given and hmac.compare_digest(given.encode(), token.encode()):
            rest = urllib.parse.urlencode(
                [(k, v) for k, vs in query.items() if k != "token" for v in vs]
            )
            return _html(
                302,
                "",
                [
                    ("Location", path + ("?" + rest if rest else "")),
                    ("Set-Cookie", "%s=%s; Path=/; HttpOnly; SameSite=Strict" % (COOKIE, token)),
                ],
            )
        if not _authorized(environ, token):
            return _html(
                401,
                pages.message_page(
                    "Token required", "Open this page with ?token=TOKEN ([web] token)."
                ),
                [("WWW-Authenticate", 'Bearer realm="st2bridge"')],
            )
    if path in STATIC:
        ctype, body = STATIC[path]
        return 200, ctype, body, []
    if path == "/":
        return _html(302, "", [("Location", "/executions")])
    status_filter, workflow = first("status"), first("workflow")
    if status_filter and status_filter not in st.ALL:
        return _html(400, pages.message_page("Bad filter", "unknown status %s" % status_filter))
    try:
        if path == "/events":  # alarms: what monitoring systems posted (st2bridge-api)
            return _html(200, event_pages.events_page(event_pages.rows(store, LIST_LIMIT)))
        if path in ("/executions", "/api/executions"):
            rows = data.list_rows(store, status_filter, workflow, LIST_LIMIT, clock())
            if path.startswith("/api/"):
                return _json(200, {"executions": rows})
            live = "api/executions?" + urllib.parse.urlencode(
                {"status": status_filter, "workflow": workflow}
            )
            return _html(200, pages.executions_page(rows, status_filter, workflow, live))
        match = DETAIL.match(path)
        if match:
            api, execution_id = match.groups()
            detail = data.Detail(store, engine, execution_id, clock(), with_graphs=not api)
            if api:
                return _json(200, detail.live())
            live = (
                ""
                if st.is_terminal(detail.record.get("status"))
                else "../api/executions/" + urllib.parse.quote(execution_id, safe="")
            )
            return _html(200, pages.execution_page(detail, live))
    except errors.NotFound:
        return _html(
            404, pages.message_page("Not found", "no execution %s" % path.rsplit("/", 1)[-1])
        )
    except errors.StoreError as exc:
        return _html(503, pages.message_page("Store unavailable", str(exc)))
    return _html(404, pages.message_page("Not found", "no page %s" % path))
