"""A client for Mistral's REST API v2 over one pool of HTTP connections
(st2bridge.engine.transport).

Every failure becomes one of the `st2bridge.errors.Engine*` classes with a
one-line message that starts with what was attempted. Only requests that are
safe to repeat are retried (see `_retry_safe` and `_retry_unsent`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from st2bridge import concurrency
from st2bridge.engine import transport
from st2bridge.engine.base import Resource
from st2bridge.engine.http_errors import STATUS_ERRORS, fault, unreachable
from st2bridge.engine.retry import RetryPolicy
from st2bridge.errors import (
    EngineClientError,
    EngineConflict,
    EngineError,
    EngineMalformed,
    EngineServerError,
    EngineUnavailable,
)

log = logging.getLogger(__name__)

# Mistral returns these as JSON-encoded strings; callers want objects.
# Workflow resources are left alone: their `input` is "a, b=1", not JSON.
_JSON_FIELDS = (
    "input",
    "output",
    "params",
    "result",
    "published",
    "published_global",
    "runtime_context",
)


# A repeatable request (GET, PUT of a state or definition, POST of an
# execution with a client-chosen id) is retried on any retryable error. Any
# other request only when it provably never left this machine (refused, DNS
# failure, connect timeout): after a read timeout, a dropped answer or a 5xx it
# may have taken effect, and repeating it could act twice.
def _retry_safe(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


def _retry_unsent(exc: BaseException) -> bool:
    return isinstance(exc, EngineUnavailable) and exc.retryable and not exc.request_sent


class TokenProvider(Protocol):
    """Where the client's token comes from (st2bridge.engine.auth)."""

    renewable: bool

    def get_token(self) -> str | None: ...

    def invalidate(self, token: str | None) -> None: ...


class MistralClient:
    """Talks to one Mistral API endpoint such as http://127.0.0.1:8989/v2.

    Thread-safe: callers share one client and its connection pool.
    `auth_token` may be replaced at any time (after a token refresh).
    `rpc_read_timeout` is for calls that wait on the engine's RPC (start,
    state change, rerun): Mistral answers those within its
    rpc_response_timeout (60 s, then 500); giving up earlier only piles a
    repeated request onto an engine that is already slow. `pool_size`:
    connections kept open (more callers at once get throw-away ones).
    The environment (proxy, CA bundle) is read here, once.
    """

    def __init__(
        self,
        api_url: str,
        *,
        auth_token: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        rpc_read_timeout: float = 65.0,
        verify: bool | str = True,
        retry: RetryPolicy | None = None,
        pool_size: int = 20,
        token_provider: TokenProvider | None = None,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "engine API URL must look like http(s)://HOST:PORT/v2, got %r" % api_url
            )
        self.api_url = api_url.rstrip("/")
        # For messages: without any user:password part.
        netloc = parts.hostname + (":%d" % parts.port if parts.port else "")
        self.display_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.auth_token = auth_token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.rpc_read_timeout = max(rpc_read_timeout, read_timeout)
        self.verify = verify
        self.retry = retry if retry is not None else RetryPolicy()
        self._transport = transport.Transport(api_url, pool_size=pool_size, verify=verify)
        self._count_lock = concurrency.current().lock()
        self.request_count = 0  # HTTP requests attempted, retries included
        self.error_counts: dict[str, int] = {}  # failed attempts by error class name (metrics)
        # get_token() before each request, invalidate(token) on a 401
        # (st2bridge.engine.auth); None: the static auth_token.
        self.token_provider = token_provider
        # The engine's Date header of the latest answer and our clock when it
        # came (clock_offset): the engine's timestamps are in its own clock.
        self._date_sample: tuple[str, float] | None = None

    @property
    def auth_token(self) -> str | None:
        return self._auth_token

    @auth_token.setter
    def auth_token(self, token: str | None) -> None:
        # http.client would reject such a header with a message quoting it.
        if token and (token != token.strip() or "\n" in token or "\r" in token):
            raise ValueError("the engine auth token has whitespace or line breaks in it")
        self._auth_token = token

    def __repr__(self) -> str:
        return "MistralClient(%r)" % self.display_url

    def __enter__(self) -> MistralClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # -- workflows ----------------------------------------------------------
    # `namespace`: Mistral's workflow namespace; None or "" is the default
    # one. Mistral matches the namespace exactly on these calls (a workflow of
    # the same name in another namespace is neither read nor changed).

    def get_workflow(self, name: str, namespace: str | None = None) -> Resource:
        return self._call(
            "GET",
            "/workflows/" + _seg(name),
            "get workflow %s%s" % (name, _in(namespace)),
            params=_query(namespace=namespace or None),
        )

    def list_workflows(
        self, namespace: str | None = None, fields: Sequence[str] | None = None
    ) -> Iterator[Resource]:
        """Every workflow the engine holds (all namespaces unless one is given)."""
        return self._pages(
            "/workflows",
            "workflows",
            "list workflows",
            _query(namespace=namespace, fields=fields, limit=1000),
            None,
        )

    def create_workflows(
        self, definition_yaml: str, namespace: str | None = None
    ) -> list[Resource]:
        """POST the definition; EngineConflict if a workflow of that name exists."""
        answer = self._call(
            "POST",
            "/workflows",
            "create workflows%s" % _in(namespace),
            text=definition_yaml,
            params=_query(namespace=namespace or None),
            retry_if=_retry_unsent,
        )
        return list(answer.get("workflows") or [])

    def update_workflows(
        self, definition_yaml: str, namespace: str | None = None
    ) -> list[Resource]:
        answer = self._call(
            "PUT",
            "/workflows",
            "update workflows%s" % _in(namespace),
            text=definition_yaml,
            params=_query(namespace=namespace or None),
        )
        return list(answer.get("workflows") or [])

    # -- workbooks and environments ------------------------------------------

    def get_workbook(self, name: str, namespace: str | None = None) -> Resource:
        return self._call(
            "GET",
            "/workbooks/" + _seg(name),
            "get workbook %s%s" % (name, _in(namespace)),
            params=_query(namespace=namespace or None),
        )

    def create_workbook(self, definition_yaml: str, namespace: str | None = None) -> Resource:
        """POST a workbook (its workflows and ad-hoc actions with it);
        EngineConflict if one of that name exists in the namespace."""
        return self._call(
            "POST",
            "/workbooks",
            "create workbook%s" % _in(namespace),
            text=definition_yaml,
            params=_query(namespace=namespace or None),
            retry_if=_retry_unsent,
        )

    def update_workbook(self, definition_yaml: str, namespace: str | None = None) -> Resource:
        return self._call(
            "PUT",
            "/workbooks",
            "update workbook%s" % _in(namespace),
            text=definition_yaml,
            params=_query(namespace=namespace or None),
        )

    def get_environment(self, name: str) -> Resource:
        """A stored environment; its `variables` as an object."""
        env = self._call("GET", "/environments/" + _seg(name), "get environment %s" % name)
        if isinstance(env.get("variables"), str):
            try:
                env["variables"] = json.loads(env["variables"])
            except ValueError:
                pass
        return env

    # -- executions ---------------------------------------------------------

    def start_execution(
        self,
        workflow_name: str,
        input: Mapping[str, Any] | str | None = None,
        *,
        execution_id: str,
        params: Mapping[str, Any] | str | None = None,
        description: str = "",
        namespace: str | None = None,
    ) -> Resource:
        """Start (or find) the execution with the client-chosen id.

        Mistral's API returns the existing execution when the id is known and
        its engine does the same when two submits race, so this is retried.
        `namespace` is the workflow's (Mistral's `workflow_namespace`).
        """
        if not execution_id:
            raise ValueError("execution_id is required: it makes the submit safe to repeat")
        action = "start execution %s of workflow %s" % (execution_id, workflow_name)
        # JSON strings, as python-mistralclient sends them (a string given
        # by the caller is taken to be JSON already).
        payload: dict[str, Any] = {
            "id": execution_id,
            "workflow_name": workflow_name,
            "input": _json_text(input),
            "params": _json_text(params),
            "description": description or "",
        }
        if namespace:
            payload["workflow_namespace"] = namespace
        ex = _decode(
            self._call(
                "POST", "/executions", action, json_body=payload, timeout=self.rpc_read_timeout
            )
        )
        # A known id comes back whatever workflow was asked for: catch reuse.
        name = ex.get("workflow_name")
        if name and workflow_name not in (name, ex.get("workflow_id")):
            raise EngineConflict(
                "%s: the id belongs to an execution of workflow %s" % (action, name)
            )
        return ex

    def get_execution(self, execution_id: str, fields: Sequence[str] | None = None) -> Resource:
        return _decode(
            self._call(
                "GET",
                "/executions/" + _seg(execution_id),
                "get execution %s" % execution_id,
                params=_query(fields=fields),
            )
        )

    def list_executions(
        self,
        *,
        fields: Sequence[str] | None = None,
        limit: int = 1000,
        sort_keys: Sequence[str] | None = None,
        sort_dirs: Sequence[str] | None = None,
        marker: str | None = None,
        **filters: str,
    ) -> Iterator[Resource]:
        """Yield every matching execution, paging with marker/limit.

        `limit` is the page size; filters pass through (e.g.
        updated_at="gte:2026-11-21 12:00:00", nulls="task_execution_id").
        """
        params = _query(
            fields=fields, limit=limit, sort_keys=sort_keys, sort_dirs=sort_dirs, **filters
        )
        return self._pages("/executions", "executions", "list executions", params, marker)

    def update_execution_state(
        self, execution_id: str, state: str, state_info: str | None = None
    ) -> Resource:
        """PUT a new state (PAUSED, RUNNING, CANCELLED, SUCCESS, ERROR).

        Safe to repeat: Mistral ignores pausing a paused, resuming a running
        or stopping a finished execution and returns it unchanged, so callers
        must check the returned state.
        """
        body: dict[str, Any] = {"state": state}
        if state_info is not None:
            body["state_info"] = state_info
        return _decode(
            self._call(
                "PUT",
                "/executions/" + _seg(execution_id),
                "set execution %s to %s" % (execution_id, state),
                json_body=body,
                timeout=self.rpc_read_timeout,
            )
        )

    def execution_report(
        self, execution_id: str, errors_only: bool = True, max_depth: int | None = None
    ) -> Resource:
        return self._call(
            "GET",
            "/executions/%s/report" % _seg(execution_id),
            "get report of execution %s" % execution_id,
            params=_query(errors_only=errors_only, max_depth=max_depth),
        )

    # -- tasks --------------------------------------------------------------

    def list_tasks(
        self, execution_id: str, fields: Sequence[str] | None = None, **filters: str
    ) -> list[Resource]:
        return list(
            self._pages(
                "/executions/%s/tasks" % _seg(execution_id),
                "tasks",
                "list tasks of execution %s" % execution_id,
                _query(fields=fields, limit=1000, **filters),
                None,
            )
        )

    def get_task(self, task_id: str) -> Resource:
        return _decode(self._call("GET", "/tasks/" + _seg(task_id), "get task %s" % task_id))

    def rerun_task(self, task_id: str, reset: bool = True) -> Resource:
        """Re-run a task in ERROR (reset=False only for with-items tasks).

        Not repeated once sent: a fast-failing task can be back in ERROR
        before the retry arrives, which would then run it a second time.
        """
        return _decode(
            self._call(
                "PUT",
                "/tasks/" + _seg(task_id),
                "rerun task %s" % task_id,
                json_body={"id": task_id, "state": "RUNNING", "reset": reset},
                timeout=self.rpc_read_timeout,
                retry_if=_retry_unsent,
            )
        )

    # -- stuck executions: the whole tree, action executions -------------------

    def execution_tree(self, execution_id: str) -> Resource:
        """The execution's report: every task, action execution (with its
        `last_heartbeat`) and sub-workflow, nested. (Mistral reads a given
        errors_only=false as true: leaving it out is what gets everything.)"""
        return self._call(
            "GET",
            "/executions/%s/report" % _seg(execution_id),
            "get the task tree of execution %s" % execution_id,
        )

    def get_action_execution(self, action_execution_id: str) -> Resource:
        return _decode(
            self._call(
                "GET",
                "/action_executions/" + _seg(action_execution_id),
                "get action execution %s" % action_execution_id,
            )
        )

    def complete_action_execution(
        self, action_execution_id: str, state: str, output: Any
    ) -> Resource:
        """PUT a RUNNING action execution to SUCCESS or ERROR with `output`:
        the engine then continues its task as if the executor had answered.
        Not repeated once sent: a second completion is refused (HTTP 500,
        "already completed")."""
        return _decode(
            self._call(
                "PUT",
                "/action_executions/" + _seg(action_execution_id),
                "set action execution %s to %s" % (action_execution_id, state),
                json_body={"state": state, "output": json.dumps(output)},
                timeout=self.rpc_read_timeout,
                retry_if=_retry_unsent,
            )
        )

    def clock_offset(self) -> float | None:
        """Seconds the engine's clock is ahead of ours (negative: behind),
        from the Date header of the latest answer (one-second resolution, so
        within about a second); None before any answer with one."""
        sample = self._date_sample
        if not sample:
            return None
        try:
            engine = email.utils.parsedate_to_datetime(sample[0]).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        # The header is truncated to the second: on average half a second late.
        return engine + 0.5 - sample[1]

    def ping(self) -> bool:
        """One cheap authenticated request, not retried: True or an error."""
        self._call(
            "GET",
            "/workflows",
            "ping the engine",
            params={"limit": "1", "fields": "name"},
            retry_if=None,
        )
        return True

    # -- plumbing -----------------------------------------------------------

    def _pages(
        self, path: str, key: str, action: str, params: dict[str, str], marker: str | None
    ) -> Iterator[Resource]:
        while True:
            page = dict(params, marker=marker) if marker else params
            body = self._call("GET", path, action, params=page)
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                # `200 {}` from a broken engine or proxy is not "nothing
                # there": an empty listing would move a change window forward.
                raise EngineMalformed(
                    "%s: the engine's answer has no '%s' list; treated as an engine error"
                    % (action, key),
                    status=200,
                )
            yield from (_decode(item) for item in items)
            # Mistral sets `next` only for a full page (its cap may be below
            # our limit); the link itself is not URL-encoded, so build our own.
            if not items or not body.get("next"):
                return
            marker = items[-1].get("id") if isinstance(items[-1], dict) else None
            if not isinstance(marker, str):
                raise EngineMalformed(
                    "%s: the engine's page ends without an id to page on" % action, status=200
                )

    def _call(
        self,
        method: str,
        path: str,
        action: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        text: str | None = None,
        timeout: float | None = None,
        retry_if: Callable[[BaseException], bool] | None = _retry_safe,
    ) -> Resource:
        def attempt() -> Resource:
            try:
                return self._send(
                    method, path, action, params, json_body, text, timeout or self.read_timeout
                )
            except EngineError as exc:
                with self._count_lock:
                    kind = type(exc).__name__
                    self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
                raise

        if retry_if is None:
            return attempt()
        answer: Resource = self.retry.call(
            attempt, retry_if=retry_if, describe="%s %s" % (method, path)
        )
        return answer

    def _send(
        self,
        method: str,
        path: str,
        action: str,
        params: dict[str, str] | None,
        json_body: Mapping[str, Any] | None,
        text: str | None,
        read_timeout: float,
        renewed: bool = False,
    ) -> Resource:
        # No "Accept: application/json": Mistral's text/plain workflow
        # endpoints answer it with 406 Not Acceptable.
        headers: dict[str, str] = {}
        token = self.token_provider.get_token() if self.token_provider else self._auth_token
        if token:
            headers["X-Auth-Token"] = token
        data = None
        if text is not None:
            headers["Content-Type"] = "text/plain"
            data = text.encode("utf-8")
        elif json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body).encode("utf-8")
        with self._count_lock:
            self.request_count += 1
        started = time.monotonic()
        try:
            resp = self._transport.request(
                method,
                path,
                params=params,
                headers=headers,
                body=data,
                timeout=(self.connect_timeout, read_timeout),
            )
        except transport.ERRORS as exc:
            reason, sent, retryable = unreachable(exc, self.connect_timeout, read_timeout)
            err = EngineUnavailable(
                "%s: cannot reach the engine at %s: %s" % (action, self.display_url, reason)
            )
            err.request_sent, err.retryable = sent, retryable
            raise err from exc
        status = resp.status_code
        date = resp.headers.get("Date")
        if date:
            self._date_sample = (date, time.time())
        log.debug(
            "engine %s %s: HTTP %d in %.1f ms",
            method,
            path,
            status,
            (time.monotonic() - started) * 1000,
        )
        if status == 401 and self.token_provider and not renewed and self.token_provider.renewable:
            # Expired or revoked early: one more try with a new token.
            self.token_provider.invalidate(token)
            return self._send(
                method, path, action, params, json_body, text, read_timeout, renewed=True
            )
        if status >= 400:
            cls = STATUS_ERRORS.get(status) or (
                EngineServerError if status >= 500 else EngineClientError
            )
            raise cls("%s: %s (HTTP %d)" % (action, fault(resp), status), status=status)
        if status >= 300:
            # Not followed: requests turned a redirected POST into a GET.
            raise EngineClientError(
                "%s: the engine answered HTTP %d, moved to %s; set [engine] api_url to it"
                % (action, status, resp.headers.get("Location") or "an address not given"),
                status=status,
            )
        if not resp.content:
            return {}
        try:
            body = resp.json()
        except ValueError:
            raise EngineServerError(
                "%s: the engine answered HTTP %d with a body that is not JSON" % (action, status),
                status=status,
            ) from None
        if not isinstance(body, dict):  # every answer the bridge asks for is an object
            raise EngineServerError(
                "%s: the engine answered HTTP %d with JSON that is not an object"
                % (action, status),
                status=status,
            )
        return body


# -- helpers ------------------------------------------------------------------


def _seg(value: object) -> str:
    return quote(str(value), safe="")


def _in(namespace: str | None) -> str:
    return " in namespace %s" % namespace if namespace else ""


def _json_text(value: Mapping[str, Any] | str | None) -> str:
    return value if isinstance(value, str) else json.dumps(value or {})


def _query(**values: Any) -> dict[str, str]:
    """Drop None, join lists with commas, write booleans as Mistral reads them:
    its API (WSME) takes any value of a boolean argument as true, "false"
    included, so False is left out (the default of every one the bridge sends)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            value = "true" if value else None
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if value is not None:
            out[key] = str(value)
    return out


def _decode(obj: Resource) -> Resource:
    if isinstance(obj, dict):
        for key in _JSON_FIELDS:
            if isinstance(obj.get(key), str):
                try:
                    obj[key] = json.loads(obj[key])
                except ValueError:
                    pass  # not JSON after all: keep what Mistral sent
    return obj


if TYPE_CHECKING:  # mypy: the client is an engine (st2bridge/engine/base.py)
    from st2bridge.engine.base import Engine

    def _is_an_engine(client: MistralClient) -> Engine:
        return client
