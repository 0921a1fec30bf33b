"""Starting a daemon under the backend its config names.

eventlet must patch the standard library before the libraries that open
sockets and start threads are imported, so a daemon's entry point imports
only this module, the config and the errors (none of which opens a socket or
starts a thread), reads the config, chooses the backend, and only then
imports the module that does the work.
"""

import sys

from st2bridge import concurrency, config, errors
from st2bridge.text import one_line


def load(argv, prog, **kwargs):
    """The daemon's config, with its backend chosen and prepared; or the exit
    code of a one-line error."""
    try:
        conf = config.load(argv, prog=prog, **kwargs)
    except errors.BridgeError as exc:
        print("%s: error: %s" % (prog, one_line(exc)), file=sys.stderr)
        return None, exc.exit_code
    concurrency.init(conf.concurrency)
    return conf, None
