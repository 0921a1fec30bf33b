"""How long the change log keeps its entries (one rule for every daemon that
prunes it: st2bridge-api, and the trackers, so that a bridge run without an
API does not keep the log for ever).

Entries older than `[api] stream_window` go, but not those the notifier has
not turned into notifications yet (its cursor), unless they are older than
`[notify] deadline_seconds` too: by then their deliveries would have been
given up anyway, and a bridge with no API process must not grow without end.
"""

import logging

from st2bridge import errors

LOG = logging.getLogger("st2bridge.api.retention")
PRUNE_EVERY = 60.0
CURSOR = "notify"  # st2bridge.api.notifications.CURSOR


def prune(store, conf, now):
    """Prune once; the number of entries deleted (0 on a store error, logged)."""
    try:
        pruned = store.prune_changes(
            now - conf.api.stream_window, keep_after_seq=store.get_cursor(CURSOR)
        )
        oldest = now - max(conf.api.stream_window, conf.notify.deadline_seconds)
        stale = store.prune_changes(oldest)
    except errors.StoreError as exc:
        LOG.warning("pruning the change log failed: %s; trying again in %.0f s", exc, PRUNE_EVERY)
        return 0
    if stale:
        LOG.warning(
            "pruned %d change log entries older than [notify] deadline_seconds that no "
            "st2bridge-api had turned into notifications (is one running?)",
            stale,
        )
    if pruned:
        LOG.info("pruned %d change log entries older than [api] stream_window", pruned)
    return pruned + stale
