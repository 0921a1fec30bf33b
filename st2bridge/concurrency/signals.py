"""A daemon's stop and reload signals, shared by st2bridge-api and the tracker.

SIGTERM and SIGINT ask the daemon to stop, SIGHUP to re-read its log level.
The handlers only set a flag: the main loop acts on it. The interpreter
itself writes a byte to a pipe when a signal arrives, which wakes the loop's
select() at once. A second stop signal exits at once (code 1).
"""

import logging
import os
import select
import signal


class StopSignals:
    """Mixin of a daemon's main object. Call open_wake_pipe() in __init__,
    install_signal_handlers() from the main thread, and let the main loop
    wait in wait_for_signal() and check `stopping` and `reload_requested`."""

    # The daemon's logger, and what it says when a second signal ends it.
    signal_log = logging.getLogger("st2bridge")
    second_signal_message = "second %s: exiting now"

    def open_wake_pipe(self):
        self.stopping = False
        self.reload_requested = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def install_signal_handlers(self):
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def request_reload(self, signum, frame):
        self.reload_requested = True

    def request_stop(self, signum, frame):
        if self.stopping:
            self.signal_log.warning(self.second_signal_message, signal.Signals(signum).name)
            os._exit(1)
        self.stopping = True
        self._signal_name = signal.Signals(signum).name

    def wait_for_signal(self, seconds):
        """Sleep up to `seconds`, but return at once when a signal arrives."""
        readable, _, _ = select.select([self._wake_r], [], [], seconds)
        if readable:
            try:
                os.read(self._wake_r, 64)
            except BlockingIOError:
                pass
