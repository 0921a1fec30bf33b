"""The /v1/executions and /v1/tasks handlers: check the request, act through
the same code as the CLI (the Runner, control, the store), answer with the
CLI's JSON."""

import logging
import re
import time
import urllib.parse

from st2bridge import control, errors, errortree
from st2bridge import status as st
from st2bridge.api import actions
from st2bridge.api.starter import StartRequest
from st2bridge.cli import executions as cli_executions
from st2bridge.cli import output, timespec
from st2bridge.text import one_line

LOG = logging.getLogger("st2bridge.api")

START_FIELDS = {
    "workflow": (str, "a string"),
    "definition": (str, "a string (the YAML text)"),
    "input": (dict, "an object"),
    "env": (dict, "an object"),
    "namespace": (str, "a string"),
    "labels": (dict, "an object of strings"),
    "task": (str, "a string"),
    "timeout": ((int, float), "a number of seconds"),
    "notify": (list, 'a list of {"url", "secret"}'),
}
SINK_FIELDS = {"url", "secret", "every_status"}
LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RECOVER_FIELDS = ("dry_run", "rerun", "settle")
LIST_PARAMS = {"status", "workflow", "label", "since", "limit", "marker"}
MAX_LIMIT = 1000
MAX_SINKS = 10
MAX_LABELS = 64


def record_view(record, tree=None):
    """The record as `st2bridge execution get --json` prints it."""
    return dict(output.execution_view(record), error_tree=tree)


class ExecutionHandlers:
    def __init__(self, store, engine, starter, clock=time.time, stuck_conf=None):
        self.store = store
        self.stuck_conf = stuck_conf  # [stuck] options, for recover
        self.engine = engine
        self.starter = starter
        self.clock = clock

    # -- start ------------------------------------------------------------------

    def start(self, request):
        key = request.header("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise errors.InputError("Idempotency-Key must be 1-255 printable ASCII characters")
        start = parse_start(request.json())
        start.idempotency_key = key
        start.started_by = request.key["name"]
        started = self.starter.start(start)  # a key used for another request: Conflict
        record = started.record
        location = [
            ("Location", "/v1/executions/" + record["id"]),
            ("Server-Timing", "engine;dur=%.3f" % (start.engine_seconds * 1000)),
        ]
        if started.reused:
            return 200, record_view(record), location + [("Idempotent-Replayed", "true")]
        view = record_view(record)
        if started.warning:
            view["warning"] = started.warning
        if not started.confirmed:
            # Recorded, not confirmed by the engine: a tracker submits it.
            LOG.warning(
                "execution %s recorded, not yet submitted: %s", record["id"], started.warning
            )
            return 202, view, location
        LOG.info(
            "execution %s of %s started by key %s%s",
            record["id"],
            record["workflow_name"],
            start.started_by,
            " (idempotency key given)" if key else "",
        )
        return 201, view, location

    # -- read -------------------------------------------------------------------

    def list(self, request):
        q = request.query
        unknown = sorted(set(q) - LIST_PARAMS)
        if unknown:
            raise errors.InputError(
                "unknown query parameter %s (known: %s)"
                % (", ".join(unknown), ", ".join(sorted(LIST_PARAMS)))
            )
        single = {k: _single(q, k) for k in LIST_PARAMS - {"label"}}
        statuses = cli_executions.parse_statuses(single["status"]) if single["status"] else None
        since = timespec.parse_since(single["since"], self.clock()) if single["since"] else None
        limit = _limit(single["limit"])
        labels = dict(_label_filter(text) for text in q.get("label", []))
        before = None
        if single["marker"]:
            try:
                marker = self.store.get_execution(single["marker"])
            except errors.NotFound:
                raise errors.InputError("unknown marker %s" % single["marker"][:128]) from None
            before = (marker["created_at"], marker["id"])
        records = self.store.list_executions(
            status=statuses,
            workflow_name=single["workflow"] or None,
            since=since,
            limit=limit,
            labels=labels or None,
            before=before,
        )
        more = len(records) == limit
        return 200, {
            "executions": [record_view(r) for r in records],
            "next_marker": records[-1]["id"] if more else None,
        }

    def get(self, request):
        record = control.resolve(self.store, urllib.parse.unquote(request.params[0]))
        return 200, record_view(record, self._error_tree(record))

    def _error_tree(self, record):
        if record["status"] != st.FAILED or record.get("engine_state") != "ERROR":
            return None
        try:
            return errortree.from_report(
                self.engine.execution_report(record["engine_execution_id"])
            )
        except errors.EngineError as exc:
            LOG.info("no error tree for execution %s: %s", record["id"], one_line(exc))
            return None

    def tasks(self, request):
        record = control.resolve(self.store, request.params[0])
        rows = cli_executions.task_rows(self.engine, record["engine_execution_id"], self.clock())
        return 200, {"execution_id": record["id"], "tasks": rows}

    # -- act ----------------------------------------------------------------------

    def change(self, request):
        record = control.resolve(self.store, request.params[0])  # an unknown id first: 404
        request.json(required=False)  # nothing to give, but a body must still be JSON
        return 200, actions.change(
            self.store,
            self.engine,
            record["id"],
            request.params[1],
            request.key["name"],
            clock=self.clock,
        )

    def rerun(self, request):
        task_id = request.params[0]
        body = request.json(required=False)
        unknown = sorted(set(body) - {"reset"})
        if unknown:
            raise errors.InputError("unknown field %s (known: reset)" % ", ".join(unknown))
        reset = body.get("reset", True)
        if not isinstance(reset, bool):
            raise errors.InputError('field "reset" must be true or false')
        if not TASK_ID.match(task_id):
            raise errors.InputError("invalid task id %s" % task_id[:128])
        return 200, actions.rerun(
            self.store, self.engine, task_id, request.key["name"], reset=reset, clock=self.clock
        )

    def recover(self, request):
        body = request.json(required=False)
        unknown = sorted(set(body) - set(RECOVER_FIELDS))
        if unknown:
            raise errors.InputError(
                "unknown field %s (known: %s)" % (", ".join(unknown), ", ".join(RECOVER_FIELDS))
            )
        for name in ("dry_run", "rerun"):
            if not isinstance(body.get(name, False), bool):
                raise errors.InputError('field "%s" must be true or false' % name)
        settle = body.get("settle", 30.0)
        if (
            not isinstance(settle, (int, float))
            or isinstance(settle, bool)
            or not 0 <= settle <= actions.MAX_SETTLE
        ):
            raise errors.InputError(
                'field "settle" must be a number of seconds, 0-%d' % actions.MAX_SETTLE
            )
        return 200, actions.recover_execution(
            self.store,
            self.engine,
            request.params[0],
            request.key["name"],
            stuck_conf=self.stuck_conf,
            dry_run=body.get("dry_run", False),
            rerun=body.get("rerun", True),
            settle=float(settle),
            clock=self.clock,
        )


# -- request checks -----------------------------------------------------------------


def parse_start(body):
    """A StartRequest from a POST /v1/executions body; InputError naming the
    first thing wrong."""
    for name, value in body.items():
        if name not in START_FIELDS:
            raise errors.InputError(
                "unknown field %r (known: %s)" % (name[:64], ", ".join(sorted(START_FIELDS)))
            )
        kind, what = START_FIELDS[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise errors.InputError('field "%s" must be %s' % (name, what))
    if not body.get("workflow") and body.get("definition") is None:
        raise errors.InputError(
            'give "workflow" (a registered workflow name) or "definition" (the YAML text)'
        )
    if "workflow" in body and not 0 < len(body["workflow"]) <= 255:
        raise errors.InputError('field "workflow" must be a name of 1-255 characters')
    timeout = body.get("timeout")
    if timeout is not None and not 0 < timeout <= 10 * 365 * 86400:
        raise errors.InputError('field "timeout" must be a positive number of seconds')
    if "task" in body and not body["task"]:
        raise errors.InputError('field "task" must name a task')
    return StartRequest(
        workflow=body.get("workflow"),
        definition=body.get("definition"),
        input=body.get("input") or {},
        env=body.get("env") or {},
        namespace=body.get("namespace"),
        labels=check_labels(body.get("labels") or {}),
        task=body.get("task"),
        timeout=float(timeout) if timeout is not None else None,
        notify=check_sinks(body.get("notify") or []),
    )


def check_labels(labels):
    if len(labels) > MAX_LABELS:
        raise errors.InputError("at most %d labels" % MAX_LABELS)
    for key, value in labels.items():
        if not LABEL_KEY.match(key):
            raise errors.InputError(
                "label key %r: use 1-63 letters, digits and _ . / - (starting with a letter "
                "or digit)" % key[:64]
            )
        if not isinstance(value, str) or len(value) > 256 or not value.isprintable():
            raise errors.InputError("label %s: the value must be a printable string" % key)
    return dict(labels)


def check_sinks(sinks):
    if len(sinks) > MAX_SINKS:
        raise errors.InputError('field "notify": at most %d sinks' % MAX_SINKS)
    out = []
    for sink in sinks:
        if not isinstance(sink, dict):
            raise errors.InputError('field "notify": each sink is an object {"url", "secret"}')
        unknown = sorted(set(sink) - SINK_FIELDS)
        if unknown:
            raise errors.InputError(
                'field "notify": unknown sink field %s (known: %s)'
                % (", ".join(unknown), ", ".join(sorted(SINK_FIELDS)))
            )
        url = sink.get("url")
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.InputError('field "notify": a sink needs an http(s) "url"')
        if len(url) > 2048:
            raise errors.InputError('field "notify": a sink url is over 2048 characters')
        secret = sink.get("secret")
        if not isinstance(secret, str) or not 16 <= len(secret) <= 256:
            raise errors.InputError('field "notify": a sink needs a "secret" of 16-256 characters')
        every = sink.get("every_status", False)
        if not isinstance(every, bool):
            raise errors.InputError('field "notify": "every_status" must be true or false')
        out.append({"url": url, "secret": secret, "every_status": every})
    return out


def _single(query, name):
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise errors.InputError("query parameter %s is given more than once" % name)
    return values[0]


def _limit(text):
    if text is None:
        return 50
    try:
        limit = int(text)
    except ValueError:
        raise errors.InputError("limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.InputError("limit must be 1-%d" % MAX_LIMIT)
    return limit


def _label_filter(text):
    key, sep, value = text.partition("=")
    if not sep or not LABEL_KEY.match(key):
        raise errors.InputError("label filter %r is not KEY=VALUE" % text[:64])
    return key, value
