"""Building the bridge's parts from configuration (shared by CLI and daemons)."""

import sys

from st2bridge import config, logs
from st2bridge.engine import MistralClient, RetryPolicy, auth
from st2bridge.runner import Runner
from st2bridge.store import open_store

LOG_FORMAT = logs.FORMAT


def setup_logging(conf, stream=None, quiet=False, component=logs.TRACKER):
    """Daemons log at [DEFAULT] log_level; commands (`quiet`) show only
    warnings and errors on stderr unless DEBUG is asked for. With
    [DEFAULT] log_dir, each component also has its own file (st2bridge.logs)."""
    return logs.setup(conf, component, stream=stream or sys.stderr, quiet=quiet, strict=not quiet)


def build_engine(conf, retry=True, interactive=False, stop_max_msec=None, pool_size=20):
    """The engine client. `retry=False` for callers that back off on their own
    (the tracker reschedules a failed poll instead of blocking a green thread).
    `interactive`: a person waits (the CLI): retries stop after
    `[engine] interactive_retry_seconds`, quietly (the one error line says
    it all), and a connection attempt waits no longer than that either.
    `stop_max_msec` bounds the retries of a daemon someone waits on (the API);
    `pool_size`: connections kept open to the engine (the API's: as many as
    requests it serves at once)."""
    e = conf.engine
    stop = e.retry_stop_max_msec if retry else 0
    connect_timeout = e.connect_timeout
    if interactive:
        stop = min(stop, int(e.interactive_retry_seconds * 1000))
        connect_timeout = min(connect_timeout, max(1.0, e.interactive_retry_seconds))
    if stop_max_msec is not None:
        stop = min(stop, stop_max_msec)
    policy = RetryPolicy(
        exp_msec=e.retry_exp_msec,
        exp_max_msec=e.retry_exp_max_msec,
        stop_max_msec=stop,
        quiet=interactive,
    )
    verify = False if e.insecure else (e.cacert or True)
    return MistralClient(
        e.api_url,
        auth_token=e.auth_token,
        connect_timeout=connect_timeout,
        read_timeout=e.read_timeout,
        verify=verify,
        retry=policy,
        token_provider=auth.from_config(e, verify=verify),
        pool_size=pool_size,
    )


def build_store(conf, create=True):
    """The store. `create=False` for commands that only read or change
    existing records: a missing embedded store is an error, never made
    as a side effect."""
    s = conf.store
    return open_store(
        s.url,
        busy_timeout=s.busy_timeout,
        connect_timeout=s.connect_timeout,
        create=create,
        checkpoint_interval=s.checkpoint_interval,
        checkpoint_wal_mb=s.checkpoint_wal_mb,
    )


def build_runner(conf, engine, store):
    rt = conf.resultstracker
    return Runner(
        engine,
        store,
        query_interval=rt.query_interval,
        mode=rt.mode,
        callback_url=config.callback_url(conf),
        stale_after=rt.stale_after,
        definition_cache_seconds=conf.engine.definition_cache_seconds,
        task_events=conf.callback.task_events,
        namespace=conf.engine.namespace,
    )
