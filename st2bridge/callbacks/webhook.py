"""The webhook contract between the bridge and the engine, both ends in one place.

The runner (st2bridge.launch) puts `entry()` first in an execution's
`params.notify`; Mistral then POSTs each event of the execution (and of its
sub-workflows, which inherit `notify`) to

    POST <[callback] url>/v1/callbacks/mistral/<bridge execution id>
    X-St2bridge-Secret: <the execution's secret>

and the callback app (st2bridge.callbacks.app) reads the id with
`execution_id()` and the secret with `secret()`. The secret is left None in the
entry built here; launch.fill_secret puts a new one in before the submit. The
event types are Mistral's; an entry without task events asks for
WORKFLOW_EVENTS only. Changing any of this is a change of the webhook
contract (CONTRIBUTING.md, versions): executions started before it still post
to what they were given.
"""

import re

PATH_PREFIX = "/v1/callbacks/mistral/"
SECRET_HEADER = "X-St2bridge-Secret"
# The header as WSGI names it in the environ.
_SECRET_ENVIRON = "HTTP_" + SECRET_HEADER.upper().replace("-", "_")
_PATH = re.compile("^%s([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$" % re.escape(PATH_PREFIX))

WORKFLOW_EVENTS = frozenset(
    {
        "WORKFLOW_LAUNCHED",
        "WORKFLOW_SUCCEEDED",
        "WORKFLOW_FAILED",
        "WORKFLOW_CANCELLED",
        "WORKFLOW_PAUSED",
        "WORKFLOW_RESUMED",
        "WORKFLOW_RERUN",
    }
)
TASK_EVENTS = frozenset(
    {
        "TASK_LAUNCHED",
        "TASK_SUCCEEDED",
        "TASK_FAILED",
        "TASK_CANCELLED",
        "TASK_PAUSED",
        "TASK_RESUMED",
        "TASK_RERUN",
        "TASK_SKIPPED",
    }
)


def url(callback_url, execution_id):
    """Where the engine posts the events of `execution_id` (a bridge id)."""
    return callback_url.rstrip("/") + PATH_PREFIX + execution_id


def entry(callback_url, execution_id, *, task_events):
    """The bridge's entry of params.notify, its secret still None."""
    webhook = {
        "type": "webhook",
        "url": url(callback_url, execution_id),
        "headers": {"Content-Type": "application/json", SECRET_HEADER: None},
    }
    if not task_events:
        webhook["event_types"] = sorted(WORKFLOW_EVENTS)
    return webhook


def is_ours(notify_entry, execution_id):
    """Whether a params.notify entry (as the engine returns it) is the
    bridge's webhook for `execution_id`."""
    return isinstance(notify_entry, dict) and str(notify_entry.get("url") or "").endswith(
        PATH_PREFIX + execution_id
    )


def execution_id(path):
    """The bridge execution id of a callback request's path; None when the
    path is not a callback's."""
    match = _PATH.match(path)
    return match.group(1) if match else None


def secret(environ):
    """The secret a callback request presents (WSGI environ), or None."""
    return environ.get(_SECRET_ENVIRON)
