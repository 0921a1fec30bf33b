"""st2bridge-api: the platform's side of the bridge (REST API, stream, webhooks).

app.py          WSGI routing, JSON bodies, errors -> HTTP statuses
auth.py         API keys: made, hashed, checked
executions.py   the /v1/executions and /v1/tasks handlers
starter.py      the one place that calls the Runner (an adapter to today's)
stream.py       the change-log feed and its Server-Sent Events
notifications.py  the webhook outbox: expand, sign, deliver, retry
signing.py      the webhook signature (both ends)
openapi.py      the OpenAPI 3 document
server.py       the WSGI server (one function: the concurrency seam's server)
daemon.py       st2bridge-api: build, serve, heartbeat, stop
"""
