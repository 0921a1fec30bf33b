"""When an execution is due next: the one place that answers it.

A record's `next_poll_at` is when a tracker should look at it again. Every
writer (the runner, the poller, the callback handler, `track`, task re-runs)
asks this module, so the tracking modes mean the same thing everywhere:

    poll      checked every `query_interval` (+ jitter), from the start
    hybrid    checked once silent for `stale_after`, then every `query_interval`
    callback  no routine polling: once silent for `stale_after` an execution
              is checked only when the tracker that took its callbacks is gone
              (the safety net), and again `stale_after` later while it stays so

Failures back off exponentially (st2bridge.engine.retry.backoff_delay).
"""

import random

from st2bridge.engine.retry import backoff_delay

MODES = ("poll", "callback", "hybrid")
# A record reopened for a task re-run is not checked before this, unless the
# re-run request ends first (then it is due at once): longer than one can take.
REOPEN_HOLD = 300.0


def at_once(now):
    """Due now, whatever the mode: `track`, a task re-run, a state change
    whose outcome is not known, a result fetch that failed."""
    return now


def reopened(now):
    """A terminal record made active again for a task re-run."""
    return now + REOPEN_HOLD


class Schedule:
    def __init__(
        self,
        mode="poll",
        *,
        query_interval=5.0,
        stale_after=30.0,
        jitter_interval=0.0,
        backoff_base=1.0,
        backoff_max=60.0,
        rng=random.random,
    ):
        if mode not in MODES:
            raise ValueError("unknown tracking mode %r" % (mode,))
        self.mode = mode
        self.query_interval = query_interval
        self.stale_after = stale_after
        self.jitter_interval = jitter_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rng = rng

    @property
    def callbacks(self):
        """Whether executions report to the tracker (webhooks)."""
        return self.mode != "poll"

    def first(self, now):
        """A new execution: when it is first due."""
        return now + (self.query_interval if self.mode == "poll" else self.stale_after)

    def at_once(self, now):
        return at_once(now)

    def after_callback(self, now):
        """An accepted callback: heard from, so not due before it goes silent.
        None in poll mode (no callbacks are expected there)."""
        return None if self.mode == "poll" else now + self.stale_after

    def after_check(self, now, due=None):
        """A check that found the execution still going. Poll and hybrid: one
        interval plus jitter after its previous due time, so executions keep
        the spread their start times gave them instead of bunching up behind
        a slow pass (after `now` when it is more than an interval late).
        Callback: the safety net looks again once `stale_after` has passed."""
        if self.mode == "callback":
            return now + self.stale_after
        base = due if due is not None and now - due < self.query_interval else now
        return max(now, base + self.query_interval + self.rng() * self.jitter_interval)

    def after_skip(self, now):
        """Callback mode: due, but its listener is alive, so not checked."""
        return now + self.stale_after

    def after_failure(self, now, failures):
        """`failures` engine failures in a row (1 = the first)."""
        return now + self.backoff(failures)

    def after_not_found(self, now, count):
        """The engine answered 404 for the `count`-th time in a row (not yet
        the last): checked again after a back-off, a deleted execution is
        confirmed, a lagging engine catches up."""
        return now + self.backoff(count)

    def backoff(self, failures):
        return backoff_delay(failures, self.backoff_base, self.backoff_max, self.rng)
