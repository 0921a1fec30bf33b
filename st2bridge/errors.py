"""The bridge's error classes and the exit codes the CLI maps them to.

Loops catch the narrowest class they can handle; the CLI catches `BridgeError`
and prints its message as one line with the class's exit code.
"""

# Named exit codes: scripts and systemd units depend on these numbers.
EXIT_OK = 0
EXIT_FAILED = 1  # the workflow ended failed/canceled/timeout/abandoned
EXIT_USAGE = 2  # bad configuration, arguments or input file
EXIT_ENGINE_UNAVAILABLE = 3
EXIT_STORE_UNAVAILABLE = 4
EXIT_NOT_FOUND = 5
EXIT_ENGINE_REJECTED = 6  # the engine answered with an error (4xx/5xx)
EXIT_CONFLICT = 7  # the request conflicts with the current state


class BridgeError(Exception):
    """Base class of every error the bridge reports to its user."""

    exit_code = EXIT_FAILED


class ConfigError(BridgeError):
    """The configuration file or an option value is invalid."""

    exit_code = EXIT_USAGE


class InputError(BridgeError):
    """A workflow file, input value or argument given by the user is invalid."""

    exit_code = EXIT_USAGE


class NotFound(BridgeError):
    """No record with the given id."""

    exit_code = EXIT_NOT_FOUND


class Conflict(BridgeError):
    """The change conflicts with the record's current state."""

    exit_code = EXIT_CONFLICT


# -- store ------------------------------------------------------------------


class StoreError(BridgeError):
    exit_code = EXIT_STORE_UNAVAILABLE


class StoreUnavailable(StoreError):
    """The store cannot be reached or is locked; the operation may be retried."""


class StoreLost(StoreError):
    """The store's files were replaced, deleted or renamed under this process:
    it must stop writing (it would write where nobody else reads) and exit."""


class StoreVersionMismatch(StoreError):
    """The store's schema version is not the one this code was written for."""

    exit_code = EXIT_USAGE


# -- engine -----------------------------------------------------------------


class EngineError(BridgeError):
    """The engine failed a request. `status` is the HTTP status, or None."""

    exit_code = EXIT_ENGINE_REJECTED
    retryable = False

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class EngineUnavailable(EngineError):
    """Connection refused, reset, or timed out: the request may not have arrived."""

    exit_code = EXIT_ENGINE_UNAVAILABLE
    retryable = True
    request_sent = True  # False when it provably never left this machine


class EngineServerError(EngineError):
    """The engine answered 5xx (often an RPC timeout inside Mistral)."""

    retryable = True


class EngineMalformed(EngineServerError):
    """The engine answered 2xx with a body that lacks what the bridge needs
    (st2bridge.engine.answers): treated like a server error, never recorded."""


class EngineClientError(EngineError):
    """The engine rejected the request (4xx)."""


class EngineBadRequest(EngineClientError):
    """400: invalid input or workflow definition."""

    exit_code = EXIT_USAGE


class EngineAuthError(EngineClientError):
    """401/403: the token is missing, expired or not allowed."""


class EngineNotFound(EngineClientError):
    """404: the engine has no such object (it may have been expired)."""

    exit_code = EXIT_NOT_FOUND


class EngineConflict(EngineClientError):
    """409: the object exists already, or the state change is not allowed."""

    exit_code = EXIT_CONFLICT


# -- db-upgrade -------------------------------------------------------------
# Exit codes of `st2bridge db-upgrade` (bad configuration is EXIT_USAGE).
EXIT_SERVICES_RUNNING = 8  # a service that uses the target database runs
EXIT_DATA_AT_RISK = 9  # objects to drop hold rows (see --force)
EXIT_MIGRATION_FAILED = 10  # a migration command failed, or the end state is wrong
EXIT_DB_UNREACHABLE = 11  # the database (or its server) cannot be reached
EXIT_UPGRADE_LOCKED = 12  # another db-upgrade holds the database lock
EXIT_UPGRADE_PENDING = 13  # --check: migrations are pending


class UpgradeError(BridgeError):
    """`st2bridge db-upgrade` refused or failed; nothing unsafe was done."""


class ServicesRunning(UpgradeError):
    exit_code = EXIT_SERVICES_RUNNING


class DataAtRisk(UpgradeError):
    exit_code = EXIT_DATA_AT_RISK


class MigrationFailed(UpgradeError):
    exit_code = EXIT_MIGRATION_FAILED


class DatabaseUnreachable(UpgradeError):
    exit_code = EXIT_DB_UNREACHABLE


class UpgradeLocked(UpgradeError):
    exit_code = EXIT_UPGRADE_LOCKED
