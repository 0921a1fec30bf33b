"""The event endpoints in st2bridge-api's OpenAPI document."""

NULLABLE_STR = {"type": ["string", "null"]}


def _ref(name):
    return {"$ref": "#/components/schemas/" + name}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SCHEMAS = {
    "EventRow": {
        "type": "object",
        "required": ["id", "source", "received_at", "outcome", "alerts", "actions", "executions"],
        "properties": {
            "id": {"type": "string"},
            "source": {"type": "string"},
            "received_at": NULLABLE_STR,
            "outcome": NULLABLE_STR,
            "alerts": {"type": "integer"},
            "actions": {
                "type": "string",
                "description": "counts of outcomes, e.g. started 1, joined 3",
            },
            "executions": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": ["received", "processed"]},
            "location": {"type": "string"},
        },
    },
    "EventList": {
        "type": "object",
        "required": ["events", "next_marker"],
        "properties": {
            "events": {"type": "array", "items": _ref("EventRow")},
            "next_marker": NULLABLE_STR,
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "source", "received_at", "status", "outcome", "alerts", "executions"],
        "properties": {
            "id": {"type": "string"},
            "source": {"type": "string"},
            "name": NULLABLE_STR,
            "received_at": NULLABLE_STR,
            "processed_at": NULLABLE_STR,
            "status": {"type": "string"},
            "outcome": NULLABLE_STR,
            "by": NULLABLE_STR,
            "executions": {"type": "array", "items": {"type": "string"}},
            "payload": {},
            "alerts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": ["integer", "null"]},
                        "status": {"type": "string"},
                        "fingerprint": {"type": "string"},
                        "labels": {"type": "object"},
                        "reason": {"type": "string"},
                        "error": {"type": "string"},
                        "unmatched": {"type": "array"},
                        "actions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["rule", "outcome"],
                                "properties": {
                                    "rule": {"type": "string"},
                                    "outcome": {"type": "string"},
                                    "reason": {"type": "string"},
                                    "execution_id": {"type": "string"},
                                    "queue_id": {"type": "string"},
                                    "joined": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

_POST_ERRORS = ("400", "401", "403", "411", "413", "503")
_SIGNED = [
    {"apiKey": []},
    {"bearer": []},
    {"signature": []},
]


def _post(summary):
    error = _json(_ref("Error"), "an error: one line, and the CLI's exit code")
    return {
        "post": {
            "summary": summary,
            "description": "Authenticated by a read-write API key, or by X-St2bridge-Timestamp "
            "and X-St2bridge-Signature (sha256=HMAC-SHA256(secret, TIMESTAMP.BODY)) with the "
            "source's secret ([api] event_secrets). Recorded before it is answered.",
            "security": _SIGNED,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": dict(
                {code: error for code in _POST_ERRORS},
                **{
                    "200": _json(_ref("EventRow"), "recorded and processed"),
                    "202": _json(
                        _ref("EventRow"), "recorded; a start waits for the engine (retried)"
                    ),
                },
            ),
        }
    }


def paths(errors):
    return {
        "/v1/events/alertmanager": _post("an Alertmanager webhook notification (version 4)"),
        "/v1/events/aodh": _post("an Aodh alarm notification"),
        "/v1/events/webhook/{name}": dict(
            _post("any JSON event, for the rules of source webhook/{name}"),
            parameters=[
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        ),
        "/v1/events": {
            "get": {
                "summary": "events, newest first",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("source", "outcome", "since", "limit", "marker")
                ],
                "responses": dict(errors, **{"200": _json(_ref("EventList"), "a page")}),
            }
        },
        "/v1/events/{id}": {
            "get": {
                "summary": "one event: which rules matched each alert, what they started, "
                "joined, or why nothing started",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": dict(errors, **{"200": _json(_ref("Event"), "the event")}),
            }
        },
    }
