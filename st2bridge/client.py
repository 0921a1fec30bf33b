"""A small Python client of st2bridge-api (what a platform calls instead of the CLI).

    from st2bridge.client import Client

    client = Client("http://127.0.0.1:9104", api_key="st2b_...")
    execution = client.start("my_workflow", input={"host": "db1"}, labels={"ticket": "OPS-1"})
    done = client.wait(execution["id"], timeout=600)
    print(done["status"], done["output"])

    for event in client.stream():          # every record change, reconnecting as needed
        print(event.id, event.event, event.data["execution_id"], event.data["status"])

Records are plain dicts, the same JSON as `st2bridge execution get --json`.
`start` always sends an Idempotency-Key (its own, unless one is given), so a
start retried after a lost answer returns the first execution, never a
second one. Errors are the classes below, each with the API's one-line
message, its HTTP status and the CLI's exit code.

A webhook receiver checks the bridge's signature with `verify_webhook`.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import requests

from st2bridge.api import signing

TERMINAL = frozenset({"succeeded", "failed", "canceled", "timeout", "abandoned"})
KEEPALIVE = "keepalive"  # what _parse_sse makes of a comment line (never yielded by stream)
Records = list[dict]  # (the method Client.list hides the builtin inside the class)


class ClientError(Exception):
    """Any error the API answered, or the API could not be reached."""

    def __init__(self, message: str, status: int | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.exit_code = exit_code


class BadRequest(ClientError):
    """400/413: the request was invalid; nothing was changed."""


class Unauthorized(ClientError):
    """401: no API key, or an unknown or revoked one."""


class Forbidden(ClientError):
    """403: the key is read-only."""


class NotFound(ClientError):
    """404: no such execution (or task, or endpoint)."""


class Conflict(ClientError):
    """409: not possible in the current state, or refused by the engine."""


class Unavailable(ClientError):
    """503, or no answer: the bridge's store or engine (or the API) is down."""


class WaitTimeout(ClientError):
    """wait() gave up before the execution ended."""


_BY_STATUS = {
    400: BadRequest,
    413: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


@dataclasses.dataclass(frozen=True)
class Event:
    """One Server-Sent Event: `id` (the change's seq), `event` (created,
    status, task, end or reset) and `data` (the change)."""

    id: int | None
    event: str
    data: dict


class Client:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        session: requests.Session | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.session = session or requests.Session()
        self.session.headers.update({"X-Api-Key": api_key, "User-Agent": "st2bridge-client"})

    # -- executions --------------------------------------------------------------

    def start(
        self,
        workflow: str | None = None,
        *,
        definition: str | None = None,
        input: dict | None = None,
        env: dict | None = None,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        task: str | None = None,
        timeout: float | None = None,
        notify: list[dict] | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        """Start a registered workflow (by name), or one from its definition
        text. Retried on a lost answer with the same idempotency key."""
        body: dict[str, Any] = {}
        for name, value in (
            ("workflow", workflow),
            ("definition", definition),
            ("input", input),
            ("env", env),
            ("namespace", namespace),
            ("labels", labels),
            ("task", task),
            ("timeout", timeout),
            ("notify", notify),
        ):
            if value is not None:
                body[name] = value
        key = idempotency_key or str(uuid.uuid4())
        return self._call("POST", "/v1/executions", body, {"Idempotency-Key": key}, retry=True)

    def get(self, execution_id: str) -> dict:
        """The record (an engine id or a unique id prefix works too)."""
        return self._call("GET", "/v1/executions/" + execution_id)

    def list(
        self,
        *,
        status: str | list[str] | None = None,
        workflow: str | None = None,
        labels: dict[str, str] | None = None,
        since: str | None = None,
        limit: int = 50,
        marker: str | None = None,
    ) -> tuple[Records, str | None]:
        """One page, newest first, and the marker of the next (None at the end)."""
        params: list[tuple[str, str]] = []
        if status:
            params.append(("status", status if isinstance(status, str) else ",".join(status)))
        if workflow:
            params.append(("workflow", workflow))
        for key, value in (labels or {}).items():
            params.append(("label", "%s=%s" % (key, value)))
        if since:
            params.append(("since", since))
        params.append(("limit", str(limit)))
        if marker:
            params.append(("marker", marker))
        page = self._call("GET", "/v1/executions", params=params)
        return page["executions"], page["next_marker"]

    def iter(self, **filters: Any) -> Iterator[dict]:
        """Every matching record, page after page (filters as for list)."""
        marker = None
        while True:
            records, marker = self.list(marker=marker, **filters)
            yield from records
            if not marker:
                return

    def tasks(self, execution_id: str) -> Records:
        return self._call("GET", "/v1/executions/%s/tasks" % execution_id)["tasks"]

    def cancel(self, execution_id: str) -> dict:
        return self._call("POST", "/v1/executions/%s/cancel" % execution_id, retry=True)

    def pause(self, execution_id: str) -> dict:
        return self._call("POST", "/v1/executions/%s/pause" % execution_id, retry=True)

    def resume(self, execution_id: str) -> dict:
        return self._call("POST", "/v1/executions/%s/resume" % execution_id, retry=True)

    def rerun(self, task_id: str, reset: bool = True) -> dict:
        """Re-run a failed task (not repeated: the engine could run it twice)."""
        return self._call("POST", "/v1/tasks/%s/rerun" % task_id, {"reset": reset})

    def health(self) -> dict:
        return self._call("GET", "/v1/health", retry=False, ok=(200, 503))

    def openapi(self) -> dict:
        return self._call("GET", "/v1/openapi.json")

    def wait(self, execution_id: str, timeout: float | None = None, poll: float = 5.0) -> dict:
        """Follow an execution until its record is final; the record. Listens
        on the stream (opened before the record is read, so an end between the
        two is not missed), and reads the record at least every `poll` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        execution_id = self.get(execution_id)["id"]
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            window = poll if left is None else max(0.1, min(poll, left))
            try:
                with self._open_stream(None, execution_id, window) as answer:
                    record = self.get(execution_id)
                    if record["status"] in TERMINAL:
                        return record
                    opened = time.monotonic()
                    for event in _parse_sse(answer.iter_lines(decode_unicode=True)):
                        if event.event in ("end", "reset") or time.monotonic() - opened > window:
                            break
            except (requests.ConnectionError, requests.Timeout):
                pass  # read the record again below
            except requests.exceptions.ChunkedEncodingError:
                pass
            record = self.get(execution_id)
            if record["status"] in TERMINAL:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    "execution %s is still %s after %.0f s"
                    % (execution_id, record["status"], timeout or 0.0)
                )

    # -- the stream ------------------------------------------------------------------

    def stream(
        self,
        *,
        last_event_id: int | None = None,
        execution: str | None = None,
        reconnect: bool = True,
        idle: float | None = None,
    ) -> Iterator[Event]:
        """Every record change as it happens. With `reconnect`, a dropped
        connection is opened again with the last id seen, so nothing is
        missed (a `reset` event says some changes were no longer kept).
        `idle`: stop after that many seconds without an event."""
        last = last_event_id
        while True:
            try:
                with self._open_stream(last, execution, idle) as answer:
                    quiet_since = time.monotonic()
                    for event in _parse_sse(answer.iter_lines(decode_unicode=True)):
                        if event.event == KEEPALIVE:
                            if idle is not None and time.monotonic() - quiet_since > idle:
                                return
                            continue
                        quiet_since = time.monotonic()
                        if event.id is not None:
                            last = event.id
                        yield event
            except (requests.ConnectionError, requests.Timeout) as exc:
                if idle is not None and _timed_out(exc):
                    return
                if not reconnect:
                    raise Unavailable("the stream broke off: %s" % type(exc).__name__) from None
                time.sleep(1.0)
                continue
            except requests.exceptions.ChunkedEncodingError:
                if not reconnect:
                    return
                time.sleep(1.0)
                continue
            if not reconnect:
                return

    def _open_stream(self, last, execution, idle):
        headers = {"Accept": "text/event-stream"}
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        answer = self.session.get(
            self.url + "/v1/stream",
            headers=headers,
            params={"execution": execution} if execution else None,
            stream=True,
            timeout=(self.timeout, idle if idle is not None else 60.0),
        )
        if answer.status_code != 200:
            error = _error(answer)
            answer.close()
            raise error
        return answer

    # -- plumbing -----------------------------------------------------------------------

    def _call(self, method, path, body=None, headers=None, *, params=None, retry=None, ok=None):
        retry = method == "GET" if retry is None else retry
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                answer = self.session.request(
                    method,
                    self.url + path,
                    data=None if body is None else json.dumps(body),
                    headers=dict(
                        headers or {},
                        **({"Content-Type": "application/json"} if body is not None else {}),
                    ),
                    params=params,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt + 1 < attempts:
                    time.sleep(min(4.0, 0.25 * 2**attempt))
                    continue
                raise Unavailable(
                    "st2bridge API %s did not answer: %s" % (self.url, type(exc).__name__)
                ) from None
            if answer.status_code == 503 and attempt + 1 < attempts and ok is None:
                time.sleep(min(4.0, 0.25 * 2**attempt))
                continue
            if ok is not None and answer.status_code in ok or 200 <= answer.status_code < 300:
                return answer.json()
            raise _error(answer)
        raise AssertionError("unreachable")


def _timed_out(exc: Exception) -> bool:
    # While a streamed body is read, requests reports a read timeout as a
    # ConnectionError wrapping urllib3's ReadTimeoutError.
    return isinstance(exc, requests.ReadTimeout) or "timed out" in str(exc).lower()


def _error(answer) -> ClientError:
    try:
        body = answer.json()
        message, exit_code = body.get("error") or answer.reason, body.get("exit_code")
    except ValueError:
        message, exit_code = "HTTP %d %s" % (answer.status_code, answer.reason), None
    return _BY_STATUS.get(answer.status_code, ClientError)(message, answer.status_code, exit_code)


def _parse_sse(lines) -> Iterator[Event]:
    event, ident = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Event(ident, event, json.loads("\n".join(data)))
            event, data, ident = "message", [], None
            continue
        if line.startswith(":"):
            yield Event(None, KEEPALIVE, {})
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            ident = int(value) if value.isdigit() else None


def verify_webhook(secret: str, headers: dict, body: bytes, tolerance: float = 300.0) -> bool:
    """Whether a webhook request from the bridge is genuine and recent:
    `headers` as received (any case), `body` the raw bytes."""
    lower = {k.lower(): v for k, v in headers.items()}
    return signing.verify(
        secret,
        lower.get(signing.TIMESTAMP_HEADER.lower()),
        body,
        lower.get(signing.SIGNATURE_HEADER.lower()),
        tolerance=tolerance,
    )
