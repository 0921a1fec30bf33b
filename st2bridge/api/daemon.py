"""st2bridge-api: the REST API, the stream and the webhook notifier.

The entry point only: it reads the config, chooses the concurrency backend
([DEFAULT] concurrency) and then imports the API (st2bridge.api.service), so
that eventlet patches the standard library before anything uses it.
"""

import sys

from st2bridge import logs
from st2bridge.concurrency import launch
from st2bridge.text import one_line

NAME = logs.API


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    conf, failed = launch.load(argv, NAME)
    if conf is None:
        return failed
    from st2bridge import app, errors
    from st2bridge.api.service import ApiDaemon

    try:
        app.setup_logging(conf, component=NAME)
        store = app.build_store(conf)
        engine = app.build_engine(
            conf,
            stop_max_msec=int(conf.api.engine_retry_seconds * 1000),
            pool_size=conf.api.max_connections,
        )
    except errors.BridgeError as exc:
        print("%s: error: %s" % (NAME, one_line(exc)), file=sys.stderr)
        return exc.exit_code
    daemon = ApiDaemon(conf, store, engine)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    except OSError as exc:  # the port is taken, or not ours to bind
        print(
            "%s: error: cannot listen on %s:%d: %s"
            % (NAME, conf.api.host, conf.api.port, exc.strerror or exc),
            file=sys.stderr,
        )
        return errors.EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
