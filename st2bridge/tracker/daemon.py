"""st2bridge-resultstracker: the daemon that follows running executions.

The entry point only: it reads the config, chooses the concurrency backend
([DEFAULT] concurrency) and then imports the tracker (st2bridge.tracker.service),
so that eventlet patches the standard library before anything uses it.
"""

import sys

from st2bridge.concurrency import launch
from st2bridge.text import one_line

NAME = "st2bridge-resultstracker"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    conf, failed = launch.load(argv, NAME, require_file=True)
    if conf is None:
        return failed
    from st2bridge import app, concurrency, errors
    from st2bridge.tracker.service import Tracker

    try:
        app.setup_logging(conf, component=NAME)
        store = app.build_store(conf)
        engine = app.build_engine(conf, retry=False)
    except errors.BridgeError as exc:
        print("%s: error: %s" % (NAME, one_line(exc)), file=sys.stderr)
        return exc.exit_code
    backend = concurrency.current()
    tracker = Tracker(
        conf, store, engine, backend.executor(conf.resultstracker.thread_pool_size), backend=backend
    )
    tracker.install_signal_handlers()
    try:
        return tracker.run()
    except OSError as exc:  # e.g. the callback port is taken
        print(
            "%s: error: cannot listen on %s:%d: %s"
            % (NAME, conf.callback.host, conf.callback.port, exc.strerror or exc),
            file=sys.stderr,
        )
        return errors.EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
