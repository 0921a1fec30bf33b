"""Reading a Mistral v2 definition before anything is sent to the engine.

A definition is a workflow file (one or more workflows, `version: '2.0'`) or a
workbook (`version: '2.0'`, `name:`, `workflows:` and optionally `actions:`).
Checks here are the ones a user gets wrong most (YAML syntax, the workflow
name, input keys, a reverse workflow's target task) so they fail with one
clear line and nothing recorded; the engine still validates the full DSL when
the definition is registered.

Workflow names are the engine's: a workbook's workflow is `WORKBOOK.NAME`,
as Mistral names it; `--workflow` takes either form.
"""

import dataclasses
import hashlib
import json

import yaml

from st2bridge.errors import InputError
from st2bridge.text import one_line

# Top-level keys of a workflow file that are not workflows.
_FILE_KEYS = {"version", "name", "description", "tags"}
MAIN = "main"  # the workflow a workbook runs unless told otherwise


@dataclasses.dataclass(frozen=True)
class WorkflowFile:
    path: str
    text: str
    workflows: dict  # workflow name (short, as written) -> its parsed spec
    workbook: str = None  # the workbook's name when the file is a workbook
    actions: dict = dataclasses.field(default_factory=dict)  # a workbook's ad-hoc actions

    @property
    def kind(self):
        return "workbook" if self.workbook else "workflows"

    def full_name(self, name):
        """The engine's name of one of the file's workflows."""
        short = self.short_name(name)
        return "%s.%s" % (self.workbook, short) if self.workbook else short

    def short_name(self, name):
        if self.workbook and name.startswith(self.workbook + ".") and name not in self.workflows:
            return name[len(self.workbook) + 1 :]
        return name

    def engine_names(self):
        return [self.full_name(n) for n in self.workflows]

    def spec(self, name):
        return self.workflows[self.short_name(name)]

    def input_names(self, name):
        """(required, optional) input names the workflow declares."""
        required, optional = [], []
        for item in self.spec(name).get("input") or []:
            if isinstance(item, dict):
                optional.extend(item)
            else:
                required.append(str(item))
        return required, optional

    def task_names(self, name):
        tasks = self.spec(name).get("tasks")
        return list(tasks) if isinstance(tasks, dict) else []

    def is_reverse(self, name):
        return str(self.spec(name).get("type") or "direct") == "reverse"

    def digest(self):
        """Content address of the definition: formatting and comments aside."""
        return digest(safe_load(self.text))


def safe_load(text):
    """yaml.safe_load, with libyaml's parser when PyYAML has it (ten times
    faster: an API start parses its definition twice)."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 -- a safe loader


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def digest(parsed):
    text = json.dumps(parsed, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise InputError("cannot read workflow file %s: %s" % (path, exc.strerror)) from None
    except UnicodeDecodeError:
        raise InputError("workflow file %s is not UTF-8 text" % path) from None
    return parse(text, path)


def parse_yaml(text, path):
    """The YAML document in `text`; InputError with the line of a mistake."""
    try:
        return safe_load(text)
    except yaml.YAMLError:
        pass  # said again by the pure-Python parser, whose messages are the documented ones
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark else ""
        problem = getattr(exc, "problem", None) or one_line(exc, first_line=True)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start:  # e.g. an unclosed [ ... points at the end of the file
            problem += " (%s started at line %d)" % (context, start.line + 1)
        raise InputError("invalid YAML in %s%s: %s" % (path, where, problem)) from None


def parse(text, path="<string>"):
    doc = parse_yaml(text, path)
    if not isinstance(doc, dict):
        raise InputError("%s is not a Mistral workflow file (expected a mapping)" % path)
    if str(doc.get("version")) != "2.0":
        raise InputError("%s: missing \"version: '2.0'\" (only Mistral DSL v2 is supported)" % path)
    if _is_workbook(doc):
        return _workbook(doc, text, path)
    workflows = {k: v for k, v in doc.items() if k not in _FILE_KEYS}
    if not workflows:
        raise InputError("%s defines no workflow" % path)
    for name, spec in workflows.items():
        if not isinstance(spec, dict):
            raise InputError("%s: workflow %r must be a mapping" % (path, name))
    return WorkflowFile(path=path, text=text, workflows=workflows)


def _is_workbook(doc):
    # A workflow may itself be called "workflows": then it has tasks.
    section = doc.get("workflows")
    return isinstance(section, dict) and "tasks" not in section


def _workbook(doc, text, path):
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(
            "%s is a workbook (it has 'workflows:'): add its name, e.g. 'name: my_workbook'" % path
        )
    workflows = doc["workflows"]
    if not workflows:
        raise InputError("%s: workbook %s has no workflows under 'workflows:'" % (path, name))
    for wf_name, spec in workflows.items():
        if not isinstance(spec, dict):
            raise InputError(
                "%s: workflow %r of workbook %s must be a mapping" % (path, wf_name, name)
            )
    actions = doc.get("actions") or {}
    if not isinstance(actions, dict):
        raise InputError("%s: 'actions:' of workbook %s must be a mapping" % (path, name))
    unknown = sorted(set(doc) - _FILE_KEYS - {"workflows", "actions"})
    if unknown:
        raise InputError(
            "%s: a workbook has only name, description, tags, actions and workflows "
            "(found: %s); workflows go under 'workflows:'" % (path, ", ".join(map(str, unknown)))
        )
    return WorkflowFile(path=path, text=text, workflows=workflows, workbook=name, actions=actions)


def pick(wf_file, name=None):
    """The engine name of the workflow to run: the named one; in a workbook
    the one named `main`, or the only one; in a workflow file the only one."""
    choices = ", ".join(sorted(wf_file.workflows))
    if name:
        if wf_file.short_name(name) not in wf_file.workflows:
            raise InputError("%s has no workflow %r (it has: %s)" % (wf_file.path, name, choices))
        return wf_file.full_name(name)
    if wf_file.workbook:
        if MAIN in wf_file.workflows:
            return wf_file.full_name(MAIN)
        if len(wf_file.workflows) > 1:
            raise InputError(
                "%s: workbook %s has several workflows (%s) and none named %s: choose one "
                "with --workflow" % (wf_file.path, wf_file.workbook, choices, MAIN)
            )
    elif len(wf_file.workflows) > 1:
        raise InputError(
            "%s defines several workflows (%s): choose one with --workflow"
            % (wf_file.path, choices)
        )
    return wf_file.full_name(next(iter(wf_file.workflows)))


def check_input(wf_file, name, given):
    """Unknown or missing input keys, caught before the engine is asked."""
    required, optional = wf_file.input_names(name)
    declared = set(required) | set(optional)
    unknown = sorted(set(given) - declared)
    if unknown:
        raise InputError(
            "unknown input %s for workflow %s (it takes: %s)"
            % (", ".join(map(repr, unknown)), name, ", ".join(required + optional) or "no input")
        )
    missing = [key for key in required if key not in given]
    if missing:
        raise InputError(
            "missing required input %s for workflow %s" % (", ".join(map(repr, missing)), name)
        )


def check_task(wf_file, name, task):
    """A reverse workflow runs up to one task, which must be named; a direct
    workflow takes no task."""
    tasks = wf_file.task_names(name)
    if not wf_file.is_reverse(name):
        if task:
            raise InputError(
                "--task is for reverse workflows; workflow %s is a direct workflow" % name
            )
        return
    if not task:
        raise InputError(
            "workflow %s is a reverse workflow: choose the task to run with --task "
            "(its tasks: %s)" % (name, ", ".join(tasks) or "none")
        )
    if task not in tasks:
        raise InputError(
            "reverse workflow %s has no task %r (its tasks: %s)" % (name, task, ", ".join(tasks))
        )


def from_engine(resource, namespace=""):
    """A WorkflowFile of one workflow the engine holds (GET /v2/workflows/NAME):
    its stored definition is the workflow's own text (a workbook's workflow
    without the workbook around it). InputError if it cannot be read."""
    name = resource.get("name") or "?"
    where = "workflow %s in the engine%s" % (
        name,
        " (namespace %s)" % namespace if namespace else "",
    )
    doc = parse_yaml(resource.get("definition") or "", where)
    spec = find_spec(doc, name)
    if spec is None:
        raise InputError("%s: its definition holds no workflow %s" % (where, name))
    return WorkflowFile(path=where, text=resource.get("definition") or "", workflows={name: spec})


def find_spec(doc, name):
    """The spec of workflow `name` in a parsed definition: a workflow file, a
    workbook, a single-workflow document (`wf: {...}`) or the bare spec."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("tasks"), dict):
        return doc
    if _is_workbook(doc):
        doc = doc["workflows"]
    short = (name or "").split(".")[-1]
    for key in (name, short):
        if isinstance(doc.get(key), dict):
            return doc[key]
    specs = [v for k, v in doc.items() if k not in _FILE_KEYS and isinstance(v, dict)]
    return specs[0] if len(specs) == 1 else None
