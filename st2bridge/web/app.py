"""The web view of executions as a WSGI application.

    GET /                          -> /executions
    GET /executions?status=S&workflow=W    the list, newest first
    GET /executions/<id>           one execution: graph, states, data (and, for a
                                   logged-in key that may write, its actions)
    GET /events                    events posted to st2bridge-api, linked to their executions
    GET /api/executions?status=&workflow=  JSON the list page re-reads
    GET /api/executions/<id>       JSON the execution page re-reads (status, task states)
    GET /stream[?execution=ID]     Server-Sent Events of record changes (the API's
                                   stream, from this process): what tells a page to re-read
    GET /login, POST /login, POST /logout, POST /executions/<id>   (st2bridge.web.actions)
    GET /static/app.js, /static/style.css, /v1/health

Looking needs nothing on loopback; with a token configured every path but
/v1/health, /login and /static/ needs it (`Authorization: Bearer TOKEN`, or
`?token=TOKEN` once, which sets an HttpOnly cookie) or a logged-in session.
Acting needs a session of a key that may write, and passes the CSRF and
origin checks (st2bridge.web.session). The Content-Security-Policy allows no
inline script or style and no other origin.
"""

import hmac
import json
import logging
import re
import time
import urllib.parse

from st2bridge import errors
from st2bridge import status as st
from st2bridge.api import stream
from st2bridge.api.app import http_status, one_line
from st2bridge.web import actions, data, pages
from st2bridge.web import events as event_pages
from st2bridge.web import session as sessions
from st2bridge.wsgi import status_line

LOG = logging.getLogger("st2bridge.web")
COOKIE = "st2bridge_web"
DETAIL = re.compile(r"^/(api/)?executions/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$")
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null`
    # with a form post, and the origin check needs the real one. Nothing goes elsewhere.
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
]
STATIC = {
    "/static/app.js": ("application/javascript; charset=utf-8", pages.JS),
    "/static/style.css": ("text/css; charset=utf-8", pages.CSS),
}
LIST_LIMIT = 200


class Streamed:
    """A streamed answer (the SSE stream): sent as it comes, no Content-Length."""

    def __init__(self, chunks):
        self.chunks = chunks


def make_app(
    store,
    engine,
    token=None,
    clock=time.time,
    *,
    feed=None,
    stuck_conf=None,
    keepalive=15.0,
    recover_settle=30.0,
):
    """`feed`: a started st2bridge.api.stream.LogFollower that someone polls;
    without one the pages poll their JSON instead of following the stream."""
    view = View(store, engine, token, clock, feed, stuck_conf, keepalive, recover_settle)

    def app(environ, start_response):
        try:
            status, ctype, body, headers = view.route(environ)
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
        if isinstance(body, Streamed):
            start_response(
                "200 OK", [("Content-Type", ctype), ("X-Accel-Buffering", "no")] + SECURITY_HEADERS
            )
            return body.chunks
        payload = body.encode("utf-8") if isinstance(body, str) else body
        start_response(
            status_line(status),
            [("Content-Type", ctype), ("Content-Length", str(len(payload)))]
            + SECURITY_HEADERS
            + headers,
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else payload]

    app.sessions = view.sessions  # for the tests and the tracker's stats
    return app


def _html(status, body, headers=()):
    return status, "text/html; charset=utf-8", body, list(headers)


def _json(status, value):
    return status, "application/json", json.dumps(value, default=str), []


def _token_ok(environ, token):
    header = environ.get("HTTP_AUTHORIZATION") or ""
    if header.startswith("Bearer ") and hmac.compare_digest(
        header[7:].strip().encode(), token.encode()
    ):
        return True
    given = sessions.cookies(environ).get(COOKIE)
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _base(path):
    """The relative way back to the root from `path` (pages use relative links)."""
    return "../" * max(0, path.count("/") - 1)


class View:
    def __init__(self, store, engine, token, clock, feed, stuck_conf, keepalive, recover_settle):
        self.store = store
        self.engine = engine
        self.token = token
        self.clock = clock
        self.feed = feed
        self.keepalive = keepalive
        self.sessions = sessions.Sessions(store, clock)
        self.actions = actions.WebActions(
            store, engine, self.sessions, stuck_conf, recover_settle=recover_settle
        )

    def route(self, environ):
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "")
        session = None
        if method == "POST":
            answer = self._post(environ, path)
        elif method not in ("GET", "HEAD"):
            return (
                405,
                "text/plain; charset=utf-8",
                "use GET (or POST a form)",
                [("Allow", "GET, HEAD, POST")],
            )
        else:
            session = self._session(environ)
            answer = self._get(environ, path, session)
        status, ctype, body, headers = answer
        if isinstance(body, str) and pages.USER_MARK in body:
            if session is None and method != "POST":
                session = self._session(environ)
            here = path + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
            bar = actions.user_bar(session, _base(path), here)
            body = body.replace(pages.USER_MARK, bar, 1)
        return status, ctype, body, headers

    def _session(self, environ):
        try:
            return self.sessions.current(environ)
        except errors.StoreError as exc:
            LOG.warning("web view: cannot check the session's key: %s", exc)
            return None

    # -- POST -------------------------------------------------------------------------

    def _post(self, environ, path):
        match = DETAIL.match(path)
        try:
            if path == "/login":
                outcome = self.actions.login(environ)
            elif path == "/logout":
                outcome = self.actions.logout(environ)
            elif match and not match.group(1):
                execution_id = match.group(2)
                outcome = self.actions.act(
                    environ, execution_id, lambda: self._failed_task_ids(execution_id)
                )
                if outcome.error:
                    return self._execution(
                        environ, execution_id, error=outcome.error, status=outcome.status
                    )
                outcome.location = path
            else:
                return _html(405, pages.message_page("Not here", "nothing to post to at %s" % path))
        except sessions.Refused as exc:
            LOG.warning("web view: POST %s refused: %s", path, one_line(exc))
            return _html(403, pages.message_page("Refused", one_line(exc)))
        except errors.BridgeError as exc:
            if path == "/login":
                status, body, headers = self.actions.login_form(
                    environ, "", one_line(exc), http_status(exc)
                )
                return _html(status, body, headers)
            return _html(http_status(exc), pages.message_page("Refused", one_line(exc)))
        return _html(outcome.status, "", [("Location", outcome.location)] + outcome.headers)

    def _failed_task_ids(self, execution_id):
        detail = data.Detail(self.store, self.engine, execution_id, self.clock(), with_graphs=False)
        return {t["id"] for t in (detail.failure or {}).get("tasks") or [] if t.get("id")}

    # -- GET --------------------------------------------------------------------------

    def _get(self, environ, path, session):
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        first = lambda key: (query.get(key) or [""])[0].strip()  # noqa: E731
        if path == "/v1/health":
            return _json(200, {"status": "ok"})
        if path in STATIC:
            ctype, body = STATIC[path]
            return 200, ctype, body, []
        if path == "/login":
            status, body, headers = self.actions.login_form(environ, first("next"))
            return _html(status, body, headers)
        token = self.token
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
                        (
                            "Set-Cookie",
                            "%s=%s; Path=/; HttpOnly; SameSite=Strict" % (COOKIE, token),
                        ),
                    ],
                )
            if session is None and not _token_ok(environ, token):
                return _html(
                    401,
                    pages.message_page(
                        "Token required",
                        "Open this page with ?token=TOKEN ([web] token), or log in with an "
                        "API key at /login.",
                    ),
                    [("WWW-Authenticate", 'Bearer realm="st2bridge"')],
                )
        if path == "/":
            return _html(302, "", [("Location", "/executions")])
        if path == "/stream":
            return self._stream(environ, first("execution"))
        status_filter, workflow = first("status"), first("workflow")
        if status_filter and status_filter not in st.ALL:
            return _html(400, pages.message_page("Bad filter", "unknown status %s" % status_filter))
        try:
            if path == "/events":  # alarms: what monitoring systems posted (st2bridge-api)
                return _html(200, event_pages.events_page(event_pages.rows(self.store, LIST_LIMIT)))
            if path in ("/executions", "/api/executions"):
                rows = data.list_rows(self.store, status_filter, workflow, LIST_LIMIT, self.clock())
                if path.startswith("/api/"):
                    return _json(200, {"executions": rows})
                live = "api/executions?" + urllib.parse.urlencode(
                    {"status": status_filter, "workflow": workflow}
                )
                return _html(
                    200,
                    pages.executions_page(
                        rows, status_filter, workflow, live, "stream" if self.feed else ""
                    ),
                )
            match = DETAIL.match(path)
            if match:
                api, execution_id = match.groups()
                if api:
                    detail = data.Detail(
                        self.store, self.engine, execution_id, self.clock(), with_graphs=False
                    )
                    return _json(200, detail.live())
                return self._execution(environ, execution_id, session=session)
        except errors.NotFound:
            return _html(
                404, pages.message_page("Not found", "no execution %s" % path.rsplit("/", 1)[-1])
            )
        except errors.StoreError as exc:
            return _html(503, pages.message_page("Store unavailable", str(exc)))
        return _html(404, pages.message_page("Not found", "no page %s" % path))

    def _execution(self, environ, execution_id, session=None, error=None, status=200):
        if session is None:
            session = self._session(environ)
        try:
            detail = data.Detail(self.store, self.engine, execution_id, self.clock())
        except errors.NotFound:
            return _html(404, pages.message_page("Not found", "no execution %s" % execution_id))
        quoted = urllib.parse.quote(execution_id, safe="")
        live, stream_url = "", ""
        if not st.is_terminal(detail.record.get("status")):
            live = "../api/executions/" + quoted
            if self.feed is not None:
                stream_url = "../stream?execution=" + urllib.parse.quote(detail.record["id"])
        notice = None
        if session is not None and not error:
            notice, session.flash = session.flash, None
        box = actions.controls(detail, session, quoted, notice=notice, error=error)
        return _html(status, pages.execution_page(detail, live, stream_url, box))

    def _stream(self, environ, execution_id):
        if self.feed is None:
            return _html(404, pages.message_page("Not found", "no stream here"))
        try:
            last = stream.parse_last_id(environ.get("HTTP_LAST_EVENT_ID"))
        except errors.BridgeError as exc:
            return _html(400, pages.message_page("Bad request", one_line(exc)))
        if last is not None and last > self.feed.cursor:
            last = self.feed.cursor
        # eventlet's server holds back writes under 4 KB unless told not to.
        environ["eventlet.minimum_write_chunk_size"] = 0
        chunks = stream.events(self.feed, last, execution_id or None, self.keepalive)
        return 200, "text/event-stream; charset=utf-8", Streamed(chunks), []
