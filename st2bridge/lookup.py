"""Which execution a person or a program means: its bridge id, its engine
execution id, or a unique prefix of either (the CLI and the API share this)."""

from st2bridge import errors

MIN_PREFIX = 4


def resolve(store, text):
    """The record `text` names; NotFound, or InputError when a prefix is
    ambiguous or too short to be one."""
    text = (text or "").strip()
    if not text:
        raise errors.InputError("an execution id is required")
    found = store.find_executions(text, limit=2)
    exact = [r for r in found if text in (r["id"], r.get("engine_execution_id"))]
    if exact:
        return exact[0]
    if not found or len(text) < MIN_PREFIX:
        raise errors.NotFound("no execution %s" % text)
    if len(found) > 1:
        raise errors.InputError(
            "id prefix %s matches several executions (%s, ...): give more of it"
            % (text, ", ".join(r["id"] for r in found))
        )
    return found[0]
