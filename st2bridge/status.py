"""Bridge statuses and how the engine's states map onto them."""

REQUESTED = "requested"
RUNNING = "running"
PAUSING = "pausing"
PAUSED = "paused"
RESUMING = "resuming"
CANCELING = "canceling"
CANCELED = "canceled"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
ABANDONED = "abandoned"

ALL = (
    REQUESTED,
    RUNNING,
    PAUSING,
    PAUSED,
    RESUMING,
    CANCELING,
    CANCELED,
    SUCCEEDED,
    FAILED,
    TIMEOUT,
    ABANDONED,
)

# Once an execution reaches one of these its record is final.
TERMINAL = frozenset({CANCELED, SUCCEEDED, FAILED, TIMEOUT, ABANDONED})

# Mistral's states are upper case; terminal ones are SUCCESS, ERROR, CANCELLED.
ENGINE_TERMINAL = frozenset({"SUCCESS", "ERROR", "CANCELLED"})

_FROM_ENGINE = {
    "IDLE": RUNNING,
    "WAITING": RUNNING,
    "RUNNING": RUNNING,
    "DELAYED": RUNNING,
    "RUNNING_DELAYED": RUNNING,
    "PAUSED": PAUSED,
    "SUCCESS": SUCCEEDED,
    "ERROR": FAILED,
    "CANCELLED": CANCELED,
    "SKIPPED": SUCCEEDED,  # only tasks are skipped; a skipped task did not fail
}


def from_engine(state):
    """Map a Mistral state to a bridge status; unknown states count as running."""
    return _FROM_ENGINE.get((state or "").upper(), RUNNING)


def is_terminal(status):
    return status in TERMINAL
