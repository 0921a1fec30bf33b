"""Running a corpus case directly on a Mistral engine over its REST API,
without the bridge: how the corpus finds each case's expected final state
(corpus_extract --probe) and what the corpus test compares the bridge with."""

import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
import yaml
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from st2bridge.text import one_line

TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")


class EngineRefused(Exception):
    """The engine answered a definition or a start with an error."""


class DirectEngine:
    def __init__(self, api_url):
        self.api_url = api_url.rstrip("/")
        self.http = requests.Session()
        # A loaded engine closes kept-alive connections now and then: its
        # reads (only they: a start is not idempotent) are tried again.
        retry = Retry(total=3, backoff_factor=0.5, allowed_methods={"GET"}, status=0)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))

    def _call(self, method, path, **kwargs):
        answer = self.http.request(method, self.api_url + path, timeout=60, **kwargs)
        if answer.status_code >= 400:
            try:
                detail = answer.json().get("faultstring", answer.text)
            except ValueError:
                detail = answer.text
            raise EngineRefused(
                "%s (HTTP %d)" % (one_line(detail, first_line=True, limit=200), answer.status_code)
            )
        return answer.json() if answer.content else None

    def register(self, text, namespace):
        data = yaml.safe_load(text)
        kind = (
            "workbooks"
            if isinstance(data, dict) and "workflows" in data and "name" in data
            else "workflows"
        )
        headers = {"Content-Type": "text/plain"}
        params = {"namespace": namespace}
        try:
            self._call("POST", "/" + kind, data=text.encode(), headers=headers, params=params)
        except EngineRefused as exc:
            if "HTTP 409" not in str(exc):
                raise
            self._call("PUT", "/" + kind, data=text.encode(), headers=headers, params=params)

    def start(self, case, namespace):
        params = {}
        if case.get("env") is not None:
            params["env"] = case["env"]
        if case.get("task"):
            params["task_name"] = case["task"]
        body = {
            "workflow_name": case["workflow"],
            "workflow_namespace": namespace,
            "input": json.dumps(case.get("input") or {}),
            "params": json.dumps(params),
        }
        return self._call("POST", "/executions", json=body)["id"]

    def execution(self, execution_id):
        return self._call("GET", "/executions/%s" % execution_id)

    def wait(self, execution_id, timeout, resume_paused=True):
        """(final state or the last one seen, whether it had to be resumed)."""
        deadline, resumed = time.monotonic() + timeout, False
        while True:
            state = self.execution(execution_id)["state"]
            if state in TERMINAL:
                return state, resumed
            if state == "PAUSED" and resume_paused:
                self._call("PUT", "/executions/%s" % execution_id, json={"state": "RUNNING"})
                resumed = True
            if time.monotonic() > deadline:
                return state, resumed
            time.sleep(0.3)

    def cancel(self, execution_id):
        try:
            self._call("PUT", "/executions/%s" % execution_id, json={"state": "CANCELLED"})
        except EngineRefused:
            pass

    def sub_executions(self, root_id):
        """The executions of the sub-workflows, at every depth, of an execution."""
        subs = self._call(
            "GET", "/executions", params={"root_execution_id": root_id, "limit": 1000}
        )
        return [sub for sub in subs["executions"] if sub["id"] != root_id]

    def tasks_tree(self, root_id):
        """Every task of the execution and of its sub-workflows."""
        rows = self._call("GET", "/executions/%s/tasks" % root_id)["tasks"]
        for sub in self.sub_executions(root_id):
            rows += self._call("GET", "/executions/%s/tasks" % sub["id"])["tasks"]
        return rows


def run_case(engine, corpus_dir, case, namespace, timeout):
    """Register and start the case on the engine itself; (execution id, state, resumed)."""
    for path in case.get("register", []) + [case["file"]]:
        engine.register((corpus_dir / path).read_text(), namespace)
    execution_id = engine.start(case, namespace)
    state, resumed = engine.wait(execution_id, timeout)
    return execution_id, state, resumed


def probe_all(api_url, corpus_dir, cases, leave_out, timeout, workers=4):
    """The cases the engine runs to an end on its own (or once resumed),
    each with `expect` set; the others go to leave_out with the reason."""
    engine = DirectEngine(api_url)
    token = uuid.uuid4().hex[:6]

    def probe(indexed):
        index, case = indexed
        began = time.monotonic()
        try:
            execution_id, state, resumed = run_case(
                engine, corpus_dir, case, "probe_%s_%d" % (token, index), timeout
            )
        except EngineRefused as exc:
            return case, None, "the engine refuses it: %s" % exc
        except requests.RequestException as exc:
            return case, None, "the engine did not answer (%s)" % type(exc).__name__
        finally:
            print("%6.1f s  %s" % (time.monotonic() - began, case["name"]), file=sys.stderr)
        if state not in TERMINAL:
            engine.cancel(execution_id)
            return (
                case,
                None,
                "does not end on its own within %d s (engine state %s)" % (timeout, state),
            )
        case["resume_paused"] = resumed
        case["engine_seconds"] = round(time.monotonic() - began, 1)
        return case, state, None

    kept = []
    with ThreadPoolExecutor(workers) as pool:
        for case, state, why in pool.map(probe, enumerate(cases)):
            if why:
                leave_out(case["source"], why)
            else:
                case["expect"] = state
                kept.append(case)
    return kept
