"""The OpenAPI 3.1 document of st2bridge-api (GET /v1/openapi.json).

Written by hand, next to the handlers it describes; the tests validate it
with openapi-spec-validator and check every answer of every endpoint
against it.
"""

from st2bridge import __version__
from st2bridge import status as st
from st2bridge.alarms import openapi as alarms_openapi

NULLABLE_STR = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name):
    return {"$ref": "#/components/schemas/" + name}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _json(_ref("Error"), "an error: one line, and the CLI's exit code")
ERRORS = {
    "400": ERROR,
    "401": ERROR,
    "404": ERROR,
    "503": ERROR,
}
WRITE_ERRORS = dict(ERRORS, **{"403": ERROR, "409": ERROR, "411": ERROR, "413": ERROR})
ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "bridge execution id, engine execution id, or a unique prefix of either",
    "schema": {"type": "string"},
}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error", "exit_code"],
        "properties": {"error": {"type": "string"}, "exit_code": {"type": "integer"}},
        "additionalProperties": False,
    },
    "Task": {
        "type": "object",
        "required": ["name", "status", "state", "id"],
        "properties": {
            "name": NULLABLE_STR,
            "status": NULLABLE_STR,
            "state": NULLABLE_STR,
            "id": NULLABLE_STR,
            "label": {
                "type": "string",
                "description": "the task's place: `deploy[1 host=web2] > migrate` is the "
                "`migrate` task of the second with-items run of `deploy`",
            },
            "state_info": NULLABLE_STR,
            "started_at": NULLABLE_STR,
            "finished_at": NULLABLE_STR,
            "workflow_execution_id": NULLABLE_STR,
            "workflow_name": NULLABLE_STR,
            "parent_task_id": NULLABLE_STR,
            "index": {"type": ["integer", "null"], "description": "with-items index"},
            "item": {"description": "with-items input of this run, or null"},
        },
    },
    "Execution": {
        "type": "object",
        "description": "the record, as `st2bridge execution get --json` prints it",
        "required": [
            "id",
            "status",
            "workflow_name",
            "workbook",
            "engine_execution_id",
            "input",
            "output",
            "error",
            "tasks",
            "finished_by",
            "created_at",
            "submitted_at",
            "updated_at",
            "ended_at",
            "engine_created_at",
            "engine_updated_at",
            "labels",
            "namespace",
            "started_by",
            "stuck",
            "error_tree",
        ],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": list(st.ALL)},
            "workflow_name": {"type": "string"},
            "workbook": {
                "type": ["string", "null"],
                "description": "the workbook of the workflow (then named WORKBOOK.WORKFLOW)",
            },
            "engine_execution_id": NULLABLE_STR,
            "engine_state": NULLABLE_STR,
            "input": {"type": "object"},
            "output": {"type": ["object", "null"]},
            "error": NULLABLE_STR,
            "tasks": {"type": "array", "items": _ref("Task")},
            "finished_by": NULLABLE_STR,
            "created_at": TIME,
            "submitted_at": TIME,
            "updated_at": TIME,
            "ended_at": TIME,
            "engine_created_at": {
                "type": ["string", "null"],
                "description": "the engine's own time, as it gave it (UTC, one-second resolution)",
            },
            "engine_updated_at": {
                "type": ["string", "null"],
                "description": "the engine's own time, as it gave it (UTC, one-second resolution)",
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "namespace": {"type": "string"},
            "started_by": NULLABLE_STR,
            "error_tree": {"type": ["object", "null"]},
            "stuck": {
                "type": ["object", "null"],
                "description": "null, or why the engine looks stuck on it (signature, since, "
                "detected_at, reason, evidence, command)",
            },
            "warning": {
                "type": "string",
                "description": "only with 202: why the engine has not confirmed it yet",
            },
        },
        "additionalProperties": False,
    },
    "ExecutionList": {
        "type": "object",
        "required": ["executions", "next_marker"],
        "properties": {
            "executions": {"type": "array", "items": _ref("Execution")},
            "next_marker": {
                "type": ["string", "null"],
                "description": "pass as `marker` for the next page; null on the last one",
            },
        },
        "additionalProperties": False,
    },
    "Sink": {
        "type": "object",
        "required": ["url", "secret"],
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "secret": {"type": "string", "minLength": 16, "maxLength": 256},
            "every_status": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    },
    "StartRequest": {
        "type": "object",
        "properties": {
            "workflow": {
                "type": "string",
                "description": "a registered workflow; with `definition`: which of it to run",
            },
            "definition": {"type": "string", "description": "the workflow file's YAML text"},
            "input": {"type": "object"},
            "env": {"type": "object", "description": "params.env of the execution"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "task": {"type": "string", "description": "the target task of a reverse workflow"},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
            "notify": {"type": "array", "items": _ref("Sink"), "maxItems": 10},
        },
        "additionalProperties": False,
    },
    "EngineTask": {
        "type": "object",
        "required": ["id", "name", "state"],
        "properties": {
            "id": NULLABLE_STR,
            "name": NULLABLE_STR,
            "state": NULLABLE_STR,
            "workflow": NULLABLE_STR,
            "workflow_execution_id": NULLABLE_STR,
            "created_at": NULLABLE_STR,
            "started_at": NULLABLE_STR,
            "finished_at": NULLABLE_STR,
            "duration_s": {"type": ["number", "null"]},
            "retries": {"type": ["integer", "null"]},
            "state_info": NULLABLE_STR,
        },
    },
    "TaskList": {
        "type": "object",
        "required": ["execution_id", "tasks"],
        "properties": {
            "execution_id": {"type": "string"},
            "tasks": {"type": "array", "items": _ref("EngineTask")},
        },
        "additionalProperties": False,
    },
    "ControlResult": {
        "type": "object",
        "required": ["id", "action", "status", "engine_state", "changed"],
        "properties": {
            "id": {"type": "string"},
            "action": {"type": "string", "enum": ["cancel", "pause", "resume"]},
            "status": {"type": "string", "enum": list(st.ALL)},
            "engine_state": NULLABLE_STR,
            "changed": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    "RerunRequest": {
        "type": "object",
        "properties": {"reset": {"type": "boolean", "default": True}},
        "additionalProperties": False,
    },
    "RerunResult": {
        "type": "object",
        "required": ["execution_id", "task_id", "task_name", "reopened", "reset", "status"],
        "properties": {
            "execution_id": {"type": "string"},
            "task_id": {"type": "string"},
            "task_name": NULLABLE_STR,
            "workflow_name": NULLABLE_STR,
            "reopened": {"type": "boolean"},
            "reset": {"type": "boolean"},
            "status": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "RecoverRequest": {
        "type": "object",
        "properties": {
            "dry_run": {"type": "boolean", "default": False},
            "rerun": {"type": "boolean", "default": True},
            "settle": {"type": "number", "minimum": 0, "maximum": 300, "default": 30},
        },
        "additionalProperties": False,
    },
    "RecoverResult": {
        "type": "object",
        "description": "what `st2bridge execution recover ID --no-wait --json` prints",
        "required": ["id", "signature", "reason", "evidence", "dry_run", "steps", "done", "status"],
        "properties": {
            "id": {"type": "string"},
            "signature": {"type": "string"},
            "reason": {"type": "string"},
            "evidence": {"type": "object"},
            "dry_run": {"type": "boolean"},
            "steps": {"type": "array", "items": {"type": "string"}},
            "done": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": list(st.ALL)},
        },
        "additionalProperties": False,
    },
    "Health": {
        "type": "object",
        "required": ["status", "store"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "down"]},
            "store": {"type": "string", "enum": ["up", "down"]},
            "version": {"type": "string"},
            "detail": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "ChangeEvent": {
        "type": "object",
        "description": "the data of one stream event (one change-log entry)",
        "required": ["seq", "at", "time", "execution_id", "event", "status"],
        "properties": {
            "seq": {"type": "integer"},
            "at": {"type": "number"},
            "time": {"type": "string", "format": "date-time"},
            "execution_id": {"type": "string"},
            "event": {"type": "string", "enum": ["created", "status", "task", "end"]},
            "status": NULLABLE_STR,
            "workflow_name": NULLABLE_STR,
            "task": {"type": "object"},
        },
    },
}


def document():
    created = _json(_ref("Execution"), "started: the record")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "st2bridge API",
            "version": __version__,
            "description": "Start, follow and control Mistral executions through st2bridge. "
            "Authenticate with an API key (X-Api-Key, or Authorization: Bearer).",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-St2bridge-Signature",
                    "description": "events only: sha256=HMAC-SHA256(source secret, "
                    "X-St2bridge-Timestamp + '.' + body)",
                },
            },
            "schemas": dict(SCHEMAS, **alarms_openapi.SCHEMAS),
        },
        "paths": {
            "/v1/health": {
                "get": {
                    "summary": "liveness of the API and its store (no key needed)",
                    "security": [],
                    "responses": {
                        "200": _json(_ref("Health"), "up"),
                        "503": _json(_ref("Health"), "the store cannot be reached"),
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": dict(ERRORS, **{"200": _json({"type": "object"}, "OpenAPI")}),
                }
            },
            "/v1/executions": {
                "post": {
                    "summary": "start an execution",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "the same key returns the same execution",
                            "schema": {"type": "string", "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("StartRequest")}},
                    },
                    "responses": dict(
                        WRITE_ERRORS,
                        **{
                            "201": created,
                            "200": _json(_ref("Execution"), "the execution of that key"),
                            "202": _json(
                                _ref("Execution"),
                                "recorded; the engine did not answer: a tracker submits it",
                            ),
                        },
                    ),
                },
                "get": {
                    "summary": "executions, newest first",
                    "parameters": [
                        _query("status", "statuses, comma-separated"),
                        _query("workflow", "workflow name"),
                        {
                            "name": "label",
                            "in": "query",
                            "description": "KEY=VALUE; may be repeated (all must hold)",
                            "schema": {"type": "array", "items": {"type": "string"}},
                            "style": "form",
                            "explode": True,
                        },
                        _query("since", "ISO time, or a span back from now (30m, 1h, 2d)"),
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                        _query("marker", "next_marker of the previous page"),
                    ],
                    "responses": dict(ERRORS, **{"200": _json(_ref("ExecutionList"), "a page")}),
                },
            },
            "/v1/executions/{id}": {
                "get": {
                    "summary": "one execution (with the engine's error tree if it failed)",
                    "parameters": [ID_PARAM],
                    "responses": dict(ERRORS, **{"200": _json(_ref("Execution"), "the record")}),
                }
            },
            "/v1/executions/{id}/tasks": {
                "get": {
                    "summary": "its tasks and its sub-workflows' tasks, from the engine",
                    "parameters": [ID_PARAM],
                    "responses": dict(ERRORS, **{"200": _json(_ref("TaskList"), "tasks")}),
                }
            },
            **{
                "/v1/executions/{id}/%s" % action: {
                    "post": {
                        "summary": "%s the execution (sub-workflows follow)" % action,
                        "parameters": [ID_PARAM],
                        "responses": dict(
                            WRITE_ERRORS, **{"200": _json(_ref("ControlResult"), "asked")}
                        ),
                    }
                }
                for action in ("cancel", "pause", "resume")
            },
            "/v1/executions/{id}/recover": {
                "post": {
                    "summary": "get a stuck execution moving again (as `execution recover`)",
                    "description": "Diagnosed afresh from the engine; 409 when it is not "
                    "stuck, has ended, or has no safe recovery (nothing changed). Waits up to "
                    "`settle` seconds per step for the engine, never for the end.",
                    "parameters": [ID_PARAM],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("RecoverRequest")}},
                    },
                    "responses": dict(
                        WRITE_ERRORS, **{"200": _json(_ref("RecoverResult"), "the plan, done")}
                    ),
                }
            },
            "/v1/tasks/{id}/rerun": {
                "post": {
                    "summary": "re-run a failed task (the execution is tracked again)",
                    "parameters": [dict(ID_PARAM, description="the engine's task id")],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("RerunRequest")}},
                    },
                    "responses": dict(
                        WRITE_ERRORS, **{"200": _json(_ref("RerunResult"), "running again")}
                    ),
                }
            },
            "/v1/stream": {
                "get": {
                    "summary": "Server-Sent Events of every record change",
                    "description": "Each event: `id` (its seq), `event` (created, status, "
                    "task, end), `data` (a ChangeEvent). Reconnect with Last-Event-ID to get "
                    "what was missed; a `reset` event says some of it is no longer kept.",
                    "parameters": [
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "schema": {"type": "string", "pattern": "^[0-9]+$"},
                        },
                        _query("execution", "only this execution's events (its bridge id)"),
                    ],
                    "responses": dict(
                        ERRORS,
                        **{
                            "200": {
                                "description": "the stream",
                                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                            }
                        },
                    ),
                }
            },
            **alarms_openapi.paths(ERRORS),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this API process",
                    "responses": dict(
                        ERRORS,
                        **{
                            "200": {
                                "description": "metrics",
                                "content": {"text/plain": {"schema": {"type": "string"}}},
                            }
                        },
                    ),
                }
            },
        },
    }


def _query(name, description):
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string"}}
