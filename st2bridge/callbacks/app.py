"""The callback endpoint as a WSGI application (the contract: webhook.py).

    POST /v1/callbacks/mistral/<bridge execution id>   (header X-St2bridge-Secret)
    GET  /v1/health

Order of checks: path, method, length, then the secret (from the header
alone: no body of an unauthenticated client is ever read), then the body.
Answers: 200 recorded (or a harmless duplicate; a terminal event: its result
is being fetched), 400 malformed body, 401 no secret, 403 wrong secret, 404
unknown execution or path, 405 wrong method, 411 no length, 413 an
authenticated body over `max_body` (not read: the execution is checked with
the engine at once instead), 500 a bug (logged with its traceback), 503 store
down. Every answer is counted (CallbackHandler.answered: the health
endpoint's counts and the metrics).
"""

import json
import logging
import time

from st2bridge import errors, logs
from st2bridge.callbacks import webhook
from st2bridge.wsgi import status_line

LOG = logging.getLogger("st2bridge.callbacks")

# A with-items of thousands of failing items makes a long state_info:
# authenticated bodies are taken up to this by default.
DEFAULT_MAX_BODY = 8 * 1024 * 1024


# Every rejection is logged, a line a minute per status at most (a flood of
# bad requests must not flood the log). 403s and 413s are logged by the handler.
REJECTED = logs.RateLimitedLog(LOG)


def make_app(handler, max_body=DEFAULT_MAX_BODY):
    def app(environ, start_response):
        started = time.monotonic()
        try:
            status, answer, headers = _route(handler, max_body, environ)
        except Exception:  # a bug: answered, logged and counted, never silent
            LOG.exception(
                "callback request %s %s failed",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
            )
            status, answer, headers = 500, {"error": "internal error"}, []
        handler.answered(status, time.monotonic() - started)
        if 400 <= status < 500 and status not in (403, 413):
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
            status_line(status),
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
    execution_id = webhook.execution_id(path)
    if execution_id is None:
        return 404, {"error": "no such endpoint"}, []
    if method != "POST":
        return 405, {"error": "use POST"}, [("Allow", "POST")]
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return 411, {"error": "Content-Length required"}, []
    if length < 0:
        return 400, {"error": "negative Content-Length"}, []
    secret = webhook.secret(environ)
    try:
        denied = handler.authenticate(execution_id, secret)
    except errors.StoreError as exc:
        LOG.warning("callback for execution %s not checked: %s", execution_id, exc)
        return 503, {"error": "store unavailable"}, []
    if denied:
        return denied + ([],)
    if length > max_body:
        handler.too_large(execution_id, length, max_body)
        answer = {"error": "body over %d bytes: the execution is read from the engine" % max_body}
        return 413, answer, []
    body = environ["wsgi.input"].read(length)
    if len(body) < length:
        return 400, {"error": "body shorter than its Content-Length"}, []
    status, answer = handler.handle(execution_id, secret, body)
    return status, answer, []
