"""The callback-mode safety net: which due executions must be checked.

In callback mode executions report themselves; the poller checks one only
when nobody will hear from it: its callbacks went to a tracker that is gone
(no heartbeat for registry.STALE_AFTER_BEATS intervals, a kill -9 or a crash)
or none ever came. A `requested` record and one past its timeout are always
checked. So killing a tracker loses nothing in callback mode either.
"""

from st2bridge import registry
from st2bridge import status as st


def overdue(record, now):
    return record.get("timeout_at") is not None and now >= record["timeout_at"]


def split(store, claimed, owner, now, heartbeat_interval):
    """(records to check, records to leave alone) of a claim."""
    others = {r.get("callback_owner") for r in claimed} - {None, owner}
    alive = {owner}
    if others:
        alive |= {
            s["id"]
            for s in store.list_services()
            if registry.liveness(s, now, heartbeat_interval)[0] == "alive"
        }
    check, skip = [], []
    for record in claimed:
        heard = record.get("callback_owner") in alive
        if heard and record["status"] != st.REQUESTED and not overdue(record, now):
            skip.append(record)
        else:
            check.append(record)
    return check, skip
