"""What a Mistral definition text needs, for choosing corpus cases: which
workflows it defines, which actions and sub-workflows its tasks call, and
whether a plain local Mistral (std.* actions, no OpenStack, no network)
can run it."""

import re

import yaml

# std.* actions a plain local Mistral 23 runs with nothing else around.
LOCAL_ACTIONS = {"std.noop", "std.echo", "std.fail", "std.sleep", "std.test_dict"}
# Why the others are left out.
ACTION_NEEDS = {
    "std.http": "std.http (the network)",
    "std.mistral_http": "std.mistral_http (the network)",
    "std.ssh": "std.ssh (an SSH server)",
    "std.ssh_proxied": "std.ssh_proxied (an SSH server)",
    "std.email": "std.email (an SMTP server)",
    "std.javascript": "std.javascript (a JavaScript engine)",
    "std.js": "std.js (a JavaScript engine)",
    "std.async_noop": "std.async_noop (someone to complete the async action)",
}
TOP_LEVEL = {"version", "name", "description", "tags", "workflows", "actions"}


def load(text):
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def workflows_of(kind, data):
    """{engine name: spec} of a workflows text or a workbook."""
    if kind == "workbook":
        prefix = "%s." % data.get("name", "")
        return {prefix + k: v for k, v in (data.get("workflows") or {}).items()}
    return {k: v for k, v in data.items() if k not in ("version", "description", "tags")}


def adhoc_actions_of(kind, data):
    if kind != "workbook":
        return set()
    names = set((data.get("actions") or {}).keys())
    return names | {"%s.%s" % (data.get("name"), n) for n in names}


def _first_word(value):
    return str(value).strip().split()[0] if str(value).strip() else ""


def _tasks(spec):
    if not isinstance(spec, dict):
        return {}
    tasks = spec.get("tasks") or {}
    return tasks if isinstance(tasks, dict) else {}


def calls(spec):
    """(actions, sub-workflows) the tasks of one workflow spec call, as written."""
    actions, workflows = set(), set()
    for task in _tasks(spec).values():
        if not isinstance(task, dict):
            continue
        if "workflow" in task:
            workflows.add(_first_word(task["workflow"]))
        elif "action" in task:
            actions.add(_first_word(task["action"]))
    defaults = (spec or {}).get("task-defaults") if isinstance(spec, dict) else None
    if isinstance(defaults, dict) and "action" in defaults:
        actions.add(_first_word(defaults["action"]))
    return actions, workflows


def adhoc_bases(data):
    """The base actions of a workbook's ad-hoc actions."""
    return {
        _first_word(a.get("base", ""))
        for a in (data.get("actions") or {}).values()
        if isinstance(a, dict)
    }


def action_problem(action, adhoc):
    """Why a plain local Mistral cannot run `action` (None: it can)."""
    if "<%" in action or "{{" in action:
        return "an action name computed at run time"
    if action in LOCAL_ACTIONS or action in adhoc:
        return None
    if action in ACTION_NEEDS:
        return "needs " + ACTION_NEEDS[action]
    if re.match(r"^(nova|glance|keystone|heat|neutron|cinder|swift|zaqar|barbican)\.", action):
        return "needs OpenStack (%s)" % action
    return "needs an action the unit test registers in Python (%s)" % action


def resolve_workflow(ref, caller, defined):
    """The engine name a `workflow:` reference in `caller` resolves to, as
    Mistral resolves it: a workbook's own workflow first, then by name."""
    if "." in caller:
        local = caller.split(".")[0] + "." + ref
        if local in defined:
            return local
    return ref
