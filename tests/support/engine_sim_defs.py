"""The engine simulator's definitions over HTTP: GET, POST and PUT under
/v2/workflows, /v2/workbooks and /v2/environments. What is kept, and Mistral
23's rules for it, are the engine stub's (st2bridge/engine/stub_definitions.py).
Refusals are `Refused(status, detail)`; the simulator answers them as Mistral.
"""

import json

from st2bridge.engine import stub_rules as rules
from st2bridge.engine.stub_definitions import Definitions
from st2bridge.engine.stub_rules import Refused


class SimDefinitions(Definitions):
    def ensure(self, name, now):
        """A workflow for executions created in bulk (no definition, no input)."""
        key = ("", name)
        if key not in self.workflows:
            self.workflows[key] = dict(rules.stored(name, "", "", None, now), input="")
        return self.workflows[key]

    def start_input(self, workflow, given):
        """Checked as Mistral does, but the simulator's own `sim_*` keys need
        no declaration; a bulk-created workflow takes anything."""
        if not workflow.get("definition"):
            return dict(given)
        own = {k: v for k, v in given.items() if k.startswith("sim_")}
        rest = {k: v for k, v in given.items() if k not in own}
        return dict(super().start_input(workflow, rest), **own)

    def route(self, method, p, q, body, now):
        """(status, body) for a definitions request, or None for another one."""
        ns, kind, rest = q.get("namespace") or "", p[0], tuple(p[1:])
        if (kind, method) == ("workflows", "GET"):
            if rest:
                return 200, self.workflow(rest[0], ns)
            fields = [f for f in q.get("fields", "").split(",") if f]
            rows = self.listed(ns if "namespace" in q else None)[: int(q.get("limit") or 1000)]
            return 200, {"workflows": [_only(w, fields) for w in rows]}
        if kind == "workflows" and method in ("POST", "PUT") and not rest:
            created = method == "POST"
            stored = self.put_workflows(_text(body), ns, now, create=created)
            return (201 if created else 200), {"workflows": stored}
        if (kind, method) == ("workbooks", "GET") and rest:
            return 200, self.workbook(rest[0], ns)
        if kind == "workbooks" and method in ("POST", "PUT") and not rest:
            created = method == "POST"
            return (201 if created else 200), self.put_workbook(
                _text(body), ns, now, create=created
            )
        if (kind, method) == ("environments", "GET") and rest:
            env = self.environment(rest[0])  # on the wire, variables are JSON text
            return 200, dict(env, variables=json.dumps(env["variables"]))
        if (kind, method) == ("environments", "POST") and not rest:
            return self.post_environment(body, now)
        return None

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
        self.environments[doc["name"]] = variables
        return 201, dict(self.environment(doc["name"]), variables=json.dumps(variables))


def _text(body):
    return body.decode("utf-8", "replace")


def _only(resource, fields):
    return {k: resource.get(k) for k in ["id", *fields]} if fields else resource
