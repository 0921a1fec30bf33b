"""The event endpoints of st2bridge-api:

    POST /v1/events/alertmanager      Alertmanager's webhook (payload version 4)
    POST /v1/events/aodh              an Aodh alarm action
    POST /v1/events/webhook/{name}    any JSON object
    GET  /v1/events                   events, newest first (source, outcome, since, limit, marker)
    GET  /v1/events/{id}              one event: what became of each alert

A POST is authenticated by a read-write API key (X-Api-Key or Authorization:
Bearer, as every other request), or by a signature with the source's secret
(`[api] event_secrets`, keyed alertmanager, aodh or webhook/NAME), the
scheme of the bridge's own webhooks:

    X-St2bridge-Timestamp: Unix seconds (within 5 minutes of the bridge's clock)
    X-St2bridge-Signature: sha256=HEX, HEX = HMAC-SHA256(secret, TIMESTAMP + "." + BODY)

The event is recorded, with what became of it, before the answer: 200 when
all is done, 202 when some start waits for the engine (it is retried), 400
for a body the source never sends (recorded as `rejected`).
"""

import time
import urllib.parse

from st2bridge import errors
from st2bridge.alarms import views
from st2bridge.api import auth, signing
from st2bridge.api.app import ID, Route
from st2bridge.cli import timespec

WEBHOOK_NAME = r"([A-Za-z0-9][A-Za-z0-9_.-]{0,62})"
LIST_PARAMS = {"source", "outcome", "since", "limit", "marker"}
TOLERANCE = 300.0


class EventHandlers:
    def __init__(self, store, processor, secrets=None, clock=time.time):
        self.store = store
        self.processor = processor
        self.secrets = dict(secrets or {})
        self.clock = clock

    def routes(self):
        return [
            Route("POST", "/v1/events/alertmanager", self.alertmanager, public=True),
            Route("POST", "/v1/events/aodh", self.aodh, public=True),
            Route("POST", "/v1/events/webhook/" + WEBHOOK_NAME, self.webhook, public=True),
            Route("GET", "/v1/events", self.list),
            Route("GET", "/v1/events/" + ID, self.get),
        ]

    # -- posting -----------------------------------------------------------------------

    def alertmanager(self, request):
        return self._receive(request, "alertmanager", None)

    def aodh(self, request):
        return self._receive(request, "aodh", None)

    def webhook(self, request):
        return self._receive(request, "webhook", request.params[0])

    def _receive(self, request, source, name):
        by = self._authenticate(request, source if name is None else "webhook/" + name)
        event = self.processor.receive(source, name, request.json(), by)
        answer = views.row(event)
        answer["status"] = event["status"]
        answer["location"] = "/v1/events/" + event["id"]
        code = 202 if event["status"] != "processed" else 200
        return code, answer, [("Location", answer["location"])]

    def _authenticate(self, request, source):
        signature = request.header(signing.SIGNATURE_HEADER)
        timestamp = request.header(signing.TIMESTAMP_HEADER)
        if signature is None and timestamp is None:
            return auth.authenticate(self.store, request.environ, write=True)["name"]
        secret = self.secrets.get(source)
        if not secret:
            raise auth.Unauthorized(
                "no secret for %s in [api] event_secrets: sign with one, or send an API key"
                % source
            )
        body = request.body()
        if not signing.verify(
            secret, timestamp, body, signature, tolerance=TOLERANCE, now=self.clock()
        ):
            raise auth.Unauthorized(
                "the signature of this %s event does not match its body and timestamp "
                "(or the timestamp is more than %d s away)" % (source, TOLERANCE)
            )
        return "signature:" + source

    # -- reading ---------------------------------------------------------------------------

    def list(self, request):
        q = request.query
        unknown = sorted(set(q) - LIST_PARAMS)
        if unknown:
            raise errors.InputError(
                "unknown query parameter %s (known: %s)"
                % (", ".join(unknown), ", ".join(sorted(LIST_PARAMS)))
            )
        one = {k: (q.get(k) or [None])[-1] for k in LIST_PARAMS}
        since = timespec.parse_since(one["since"], self.clock()) if one["since"] else None
        limit = _limit(one["limit"])
        before = None
        if one["marker"]:
            try:
                marker = self.store.get_event(one["marker"])
            except errors.NotFound:
                raise errors.InputError("unknown marker %s" % one["marker"][:128]) from None
            before = (marker["received_at"], marker["id"])
        events = self.store.list_events(
            source=one["source"] or None,
            outcome=one["outcome"].split(",") if one["outcome"] else None,
            since=since,
            limit=limit,
            before=before,
        )
        return 200, {
            "events": [views.row(e) for e in events],
            "next_marker": events[-1]["id"] if len(events) == limit else None,
        }

    def get(self, request):
        event = self.store.get_event(urllib.parse.unquote(request.params[0]))
        return 200, views.event_view(event, self.store, with_payload=True)


def _limit(text):
    if text is None:
        return 50
    try:
        limit = int(text)
    except ValueError:
        raise errors.InputError("limit must be a whole number") from None
    if not 1 <= limit <= 1000:
        raise errors.InputError("limit must be 1-1000")
    return limit
