"""The callback endpoint as a WSGI application.

    POST /v1/callbacks/mistral/<bridge execution id>   (header X-St2bridge-Secret)
    GET  /v1/health

Answers: 200 recorded (or a harmless duplicate; a terminal event: its result
is being fetched), 400 malformed, 401 no secret, 403 wrong secret, 404 unknown execution
or path, 405 wrong method, 411 no length, 413 body too large, 503 store down.
"""

import json
import logging
import re

from st2bridge import logs

PATH = re.compile(r"^/v1/callbacks/mistral/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$")
REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


LOG = logging.getLogger("st2bridge.callbacks")
# Every rejection is logged, a line a minute per status at most (a flood of
# bad requests must not flood the log). 403s are logged by the handler.
REJECTED = logs.RateLimitedLog(LOG)


def make_app(handler, max_body=64 * 1024):
    def app(environ, start_response):
        status, answer, headers = _route(handler, max_body, environ)
        if 400 <= status < 500 and status != 403:
            REJECTED.log(
                logging.WARNING,
                status,
                "callback %s %s from %s rejected with %d: %s",
                environ.get("REQUEST_METHOD", "?"),
                environ.get("PATH_INFO", "")[:200],
                environ.get("REMOTE_ADDR", "?"),
                status,
                answer.get("error"),
            )
        body = json.dumps(answer).encode()
        start_response(
            "%d %s" % (status, REASONS[status]),
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + headers,
        )
        return [body]

    return app


def _route(handler, max_body, environ):
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "")
    if path == "/v1/health":
        if method != "GET":
            return 405, {"error": "use GET"}, [("Allow", "GET")]
        # A store that was replaced under the tracker, or is corrupted, is down.
        healthy, store = handler.store.health()
        answer = {"status": "ok" if healthy else "down", "store": store}
        answer["callbacks"] = dict(handler.counts)
        return (200 if healthy else 503), answer, []
    match = PATH.match(path)
    if not match:
        return 404, {"error": "no such endpoint"}, []
    if method != "POST":
        return 405, {"error": "use POST"}, [("Allow", "POST")]
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return 411, {"error": "Content-Length required"}, []
    if length > max_body or length < 0:
        return 413, {"error": "body over %d bytes" % max_body}, []
    body = environ["wsgi.input"].read(length)
    status, answer = handler.handle(match.group(1), environ.get("HTTP_X_ST2BRIDGE_SECRET"), body)
    return status, answer, []
