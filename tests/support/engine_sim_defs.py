"""The engine simulator's definitions: workflows and workbooks by namespace,
and environments (GET, POST, PUT under /v2/workflows, /v2/workbooks,
/v2/environments), read and checked with Mistral 23's rules as the engine stub
applies them (st2bridge/engine/stub_rules.py). Refusals are `Refused(status,
detail)`; the simulator answers them as Mistral does.
"""

import json

from st2bridge.engine import stub_rules as rules
from st2bridge.engine.stub_rules import Refused


class Definitions:
    def __init__(self):
        self.workflows = {}  # (namespace, name) -> workflow resource
        self.workbooks = {}  # (namespace, name) -> workbook resource
        self.environments = {}  # name -> environment resource (variables an object)

    def workflow(self, name, namespace=""):
        """The workflow resource; 404 unless it is in that namespace."""
        found = self.workflows.get((namespace or "", name))
        if found is None:
            raise Refused(
                404,
                "Workflow not found [workflow_identifier=%s, namespace=%s]"
                % (name, namespace or ""),
            )
        return found

    def ensure(self, name, now):
        """A workflow for executions created in bulk (no definition, no input)."""
        key = ("", name)
        if key not in self.workflows:
            self.workflows[key] = dict(rules.stored(name, "", "", None, now), input="")
        return self.workflows[key]

    def input(self, workflow, given):
        """The execution's input, checked as Mistral does; the simulator's own
        `sim_*` keys need no declaration."""
        own = {k: v for k, v in given.items() if k.startswith("sim_")}
        rest = {k: v for k, v in given.items() if k not in own}
        if not workflow.get("definition"):
            return given  # a bulk-created workflow
        return dict(rules.checked_input(rules.find_spec(workflow), rest, workflow["name"]), **own)

    def params(self, params, namespace):
        """params as the engine keeps them: with the namespace, and a stored
        environment's name replaced by its variables."""
        params = dict({"env": {}, "namespace": namespace}, **params)
        name = params["env"]
        if isinstance(name, str):
            if name not in self.environments:
                raise Refused(400, "Environment is not found: %s" % name)
            params["env"] = self.environments[name]["variables"]
        return params

    def route(self, method, p, q, body, now):
        """(status, body) for a definitions request, or None for another one."""
        ns = q.get("namespace") or ""
        kind, rest = p[0], tuple(p[1:])
        if kind == "workflows":
            if method == "GET" and rest:
                return 200, self.workflow(rest[0], ns)
            if method == "GET":
                fields = [f for f in q.get("fields", "").split(",") if f]
                rows = [
                    w
                    for (n, _), w in sorted(self.workflows.items())
                    if "namespace" not in q or n == ns
                ]
                rows = rows[: int(q.get("limit") or 1000)]
                return 200, {"workflows": [_only(w, fields) for w in rows]}
            if method in ("POST", "PUT") and not rest:
                return self.put_workflows(method, _text(body), ns, now)
        if kind == "workbooks":
            if method == "GET" and rest:
                return 200, self._workbook(rest[0], ns)
            if method in ("POST", "PUT") and not rest:
                return self.put_workbook(method, _text(body), ns, now)
        if kind == "environments":
            if method == "GET" and rest:
                if rest[0] not in self.environments:
                    raise Refused(404, "Environment not found [name=%s]" % rest[0])
                env = self.environments[rest[0]]
                return 200, dict(env, variables=json.dumps(env["variables"]))
            if method == "POST" and not rest:
                return self.post_environment(body, now)
        return None

    def put_workflows(self, method, text, ns, now):
        found = rules.workflow_definitions(text)
        for name in found:
            exists = (ns, name) in self.workflows
            if method == "POST" and exists:
                raise Refused(
                    409,
                    "Duplicate entry for WorkflowDefinition ['name', 'namespace', "
                    "'project_id']: %s, %s, None" % (name, ns),
                )
            if method == "PUT" and not exists:
                self.workflow(name, ns)  # 404, as Mistral
        out = [self._put(name, spec, text_, ns, now) for name, (spec, text_) in found.items()]
        return (201 if method == "POST" else 200), {"workflows": out}

    def put_workbook(self, method, text, ns, now):
        name, found = rules.workbook_definitions(text)
        exists = (ns, name) in self.workbooks
        if method == "POST" and exists:
            raise Refused(
                409,
                "Duplicate entry for Workbook ['name', 'namespace', 'project_id']: "
                "%s, %s, None" % (name, ns),
            )
        if method == "PUT" and not exists:
            self._workbook(name, ns)
        self.workbooks[(ns, name)] = rules.stored(
            name, ns, text, self.workbooks.get((ns, name)), now
        )
        for short, (spec, text_) in found.items():
            self._put("%s.%s" % (name, short), spec, text_, ns, now)
        return (201 if method == "POST" else 200), self.workbooks[(ns, name)]

    def post_environment(self, body, now):
        try:
            doc = json.loads(body or b"{}")
            variables = doc.get("variables") or {}
            variables = json.loads(variables) if isinstance(variables, str) else variables
        except (ValueError, AttributeError):
            raise Refused(400, "Invalid environment: a JSON object is required") from None
        if not doc.get("name"):
            raise Refused(400, "Invalid environment: 'name' is required")
        if doc["name"] in self.environments:
            raise Refused(409, "Duplicate entry for Environment: %s" % doc["name"])
        env = {"name": doc["name"], "variables": variables, "scope": "private", "created_at": now}
        self.environments[doc["name"]] = env
        return 201, dict(env, variables=json.dumps(variables))

    def _put(self, name, spec, definition, ns, now):
        old = self.workflows.get((ns, name))
        resource = rules.stored(name, ns, definition, old, now)
        self.workflows[(ns, name)] = dict(resource, input=rules.input_text(spec))
        return self.workflows[(ns, name)]

    def _workbook(self, name, ns):
        if (ns, name) not in self.workbooks:
            raise Refused(404, "Workbook not found [name=%s, namespace=%s]" % (name, ns))
        return self.workbooks[(ns, name)]


def _text(body):
    return body.decode("utf-8", "replace")


def _only(resource, fields):
    return {k: resource.get(k) for k in ["id", *fields]} if fields else resource
