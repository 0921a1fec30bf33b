"""What an engine stand-in keeps of definitions, as Mistral 23 keeps them:
workflows and workbooks by (namespace, name), "" the default namespace, and
stored environments (name -> variables). StubEngine and the engine simulator
(tests/support/engine_sim.py) both keep theirs here. Refusals are
`stub_rules.Refused` with Mistral's wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from st2bridge.engine import stub_rules as rules
from st2bridge.engine.stub_rules import Refused

Resource = dict[str, Any]


class Definitions:
    def __init__(self) -> None:
        self.workflows: dict[tuple[str, str], Resource] = {}
        self.workbooks: dict[tuple[str, str], Resource] = {}
        self.environments: dict[str, dict[str, Any]] = {}

    def workflow(self, name: str, namespace: str | None) -> Resource:
        found = self.workflows.get((namespace or "", name))
        if found is None:
            raise Refused(
                404,
                "Workflow not found [workflow_identifier=%s, namespace=%s]"
                % (name, namespace or ""),
            )
        return found

    def workbook(self, name: str, namespace: str | None) -> Resource:
        found = self.workbooks.get((namespace or "", name))
        if found is None:
            raise Refused(
                404, "Workbook not found [name=%s, namespace=%s]" % (name, namespace or "")
            )
        return found

    def environment(self, name: str) -> Resource:
        if name not in self.environments:
            raise Refused(404, "Environment not found [name=%s]" % name)
        return {"name": name, "variables": self.environments[name], "scope": "private"}

    def listed(self, namespace: str | None) -> list[Resource]:
        """The workflows of one namespace, or of all (None), by namespace and name."""
        return [wf for (ns, _), wf in sorted(self.workflows.items()) if namespace in (None, ns)]

    def put_workflows(
        self, text: str, namespace: str | None, now: str, *, create: bool
    ) -> list[Resource]:
        """POST (`create`: 409 if one exists) or PUT (404 if one does not) /v2/workflows."""
        found = rules.workflow_definitions(text)
        for name in found:
            exists = (namespace or "", name) in self.workflows
            if create and exists:
                raise Refused(
                    409,
                    "Duplicate entry for WorkflowDefinition ['name', 'namespace', "
                    "'project_id']: %s, %s, None" % (name, namespace or ""),
                )
            if not create:
                self.workflow(name, namespace)
        return [self._put(n, spec, text, namespace, now) for n, (spec, text) in found.items()]

    def put_workbook(self, text: str, namespace: str | None, now: str, *, create: bool) -> Resource:
        """POST or PUT /v2/workbooks: the workbook and its workflows (WORKBOOK.NAME)."""
        name, found = rules.workbook_definitions(text)
        key = (namespace or "", name)
        if create and key in self.workbooks:
            raise Refused(
                409,
                "Duplicate entry for Workbook ['name', 'namespace', 'project_id']: "
                "%s, %s, None" % (name, namespace or ""),
            )
        if not create:
            self.workbook(name, namespace)
        self.workbooks[key] = rules.stored(name, namespace, text, self.workbooks.get(key), now)
        for short, (spec, definition) in found.items():
            self._put("%s.%s" % (name, short), spec, definition, namespace, now)
        return self.workbooks[key]

    def start_input(self, workflow: Resource, given: Mapping[str, Any]) -> dict[str, Any]:
        """An execution's input, checked against the workflow's declaration."""
        return rules.checked_input(rules.find_spec(workflow), given, workflow["name"])

    def start_params(self, params: Mapping[str, Any], namespace: str) -> dict[str, Any]:
        """An execution's params as the engine keeps them: with its namespace,
        and a stored environment's name replaced by its variables."""
        out = dict({"namespace": namespace, "env": {}}, **params)
        if isinstance(out["env"], str):
            if out["env"] not in self.environments:
                raise Refused(400, "Environment is not found: %s" % out["env"])
            out["env"] = dict(self.environments[out["env"]])
        return out

    def _put(
        self, name: str, spec: dict[str, Any], definition: str, namespace: str | None, now: str
    ) -> Resource:
        key = (namespace or "", name)
        stored = rules.stored(name, namespace, definition, self.workflows.get(key), now)
        self.workflows[key] = dict(
            stored, input=rules.input_text(spec), tags=spec.get("tags") or []
        )
        return self.workflows[key]
