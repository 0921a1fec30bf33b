"""Reading a Mistral v2 workflow file before anything is sent to the engine.

Checks here are the ones a user gets wrong most (YAML syntax, the workflow
name, input keys) so they fail with one clear line and nothing recorded; the
engine still validates the full DSL when the definition is registered.
"""

import dataclasses

import yaml

from st2bridge.errors import InputError

# Top-level keys of a workflow file that are not workflows.
_FILE_KEYS = {"version", "name", "description", "tags"}


@dataclasses.dataclass(frozen=True)
class WorkflowFile:
    path: str
    text: str
    workflows: dict  # workflow name -> its parsed spec

    def spec(self, name):
        return self.workflows[name]

    def input_names(self, name):
        """(required, optional) input names the workflow declares."""
        required, optional = [], []
        for item in self.workflows[name].get("input") or []:
            if isinstance(item, dict):
                optional.extend(item)
            else:
                required.append(str(item))
        return required, optional


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise InputError("cannot read workflow file %s: %s" % (path, exc.strerror)) from None
    return parse(text, path)


def parse(text, path="<string>"):
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start:  # e.g. an unclosed [ ... points at the end of the file
            problem += " (%s started at line %d)" % (context, start.line + 1)
        raise InputError("invalid YAML in %s%s: %s" % (path, where, problem)) from None
    if not isinstance(doc, dict):
        raise InputError("%s is not a Mistral workflow file (expected a mapping)" % path)
    if str(doc.get("version")) != "2.0":
        raise InputError("%s: missing \"version: '2.0'\" (only Mistral DSL v2 is supported)" % path)
    workflows = {k: v for k, v in doc.items() if k not in _FILE_KEYS}
    if not workflows:
        raise InputError("%s defines no workflow" % path)
    for name, spec in workflows.items():
        if not isinstance(spec, dict):
            raise InputError("%s: workflow %r must be a mapping" % (path, name))
    return WorkflowFile(path=path, text=text, workflows=workflows)


def pick(wf_file, name=None):
    """The workflow to run: the named one, or the only one in the file."""
    if name:
        if name not in wf_file.workflows:
            raise InputError(
                "%s has no workflow %r (it has: %s)"
                % (wf_file.path, name, ", ".join(sorted(wf_file.workflows)))
            )
        return name
    if len(wf_file.workflows) > 1:
        raise InputError(
            "%s defines several workflows (%s): choose one with --workflow"
            % (wf_file.path, ", ".join(sorted(wf_file.workflows)))
        )
    return next(iter(wf_file.workflows))


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
