"""The service registry: each daemon's record in the store, and its heartbeat."""

import os
import socket

from st2bridge import __version__

# A service whose heartbeat is older than this many intervals counts as stale.
STALE_AFTER_BEATS = 3


def service_record(name, service_id, started_at, info=None):
    return {
        "id": service_id,
        "name": name,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": __version__,
        "started_at": started_at,
        "heartbeat_at": started_at,
        "info": info or {},
    }


def liveness(record, now, heartbeat_interval):
    """'alive' or 'stale', with the heartbeat's age in seconds."""
    age = now - (record.get("heartbeat_at") or 0)
    return ("alive" if age <= STALE_AFTER_BEATS * heartbeat_interval else "stale"), age
