"""Capped exponential backoff with jitter, the one place the bridge computes it.

`RetryPolicy` retries engine requests; `backoff_delay` serves callers that keep
their own failure counts (the tracker backs off per execution).
"""

import logging
import random
import time

from st2bridge import concurrency
from st2bridge.text import one_line

log = logging.getLogger(__name__)

# 2**62 is far beyond any cap; limiting the exponent keeps the float finite.
_MAX_EXPONENT = 62
# An engine message in a log line or an error: its first line, this long at most.
ENGINE_LIMIT = 300


def _jittered(ceiling, rng):
    # Equal jitter: half fixed, half random. The fixed half keeps the backoff
    # real under bad luck; the random half spreads callers that failed together.
    half = ceiling / 2.0
    return half + half * rng()


def backoff_delay(failures, base, cap, rng=random.random):
    """Seconds to wait after `failures` consecutive failures (1 = the first).

    The ceiling is min(cap, base * 2**(failures - 1)); the delay lies between
    half the ceiling and the ceiling. No failures means no wait.
    """
    if failures <= 0:
        return 0.0
    exponent = min(failures - 1, _MAX_EXPONENT)
    return _jittered(min(cap, base * 2**exponent), rng)


class RetryPolicy:
    """Retry a call with capped exponential backoff until a time budget is spent.

    Delay n (n = 0 for the first retry) is min(exp_max, exp * 2**n) with equal
    jitter. The policy gives up once the time elapsed since the first attempt
    plus the next delay would pass stop_max, so stop_max_msec=0 never retries.
    `sleep`, `clock` and `rng` are injectable so tests never wait.
    `quiet`: retries are logged at DEBUG, not as warnings (a command a person
    waits on reports the last error in one line; the daemon says each time
    what it will do next).
    """

    def __init__(
        self,
        exp_msec=1000,
        exp_max_msec=30000,
        stop_max_msec=120000,
        sleep=concurrency.sleep,
        clock=time.monotonic,
        rng=random.random,
        quiet=False,
    ):
        if exp_msec <= 0 or exp_max_msec <= 0:
            raise ValueError("exp_msec and exp_max_msec must be positive")
        if stop_max_msec < 0:
            raise ValueError("stop_max_msec must not be negative")
        self.exp = exp_msec / 1000.0
        self.exp_max = exp_max_msec / 1000.0
        self.stop_max = stop_max_msec / 1000.0
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.quiet = quiet

    def __repr__(self):
        return "RetryPolicy(exp_msec=%d, exp_max_msec=%d, stop_max_msec=%d)" % (
            self.exp * 1000,
            self.exp_max * 1000,
            self.stop_max * 1000,
        )

    def delays(self, started=None):
        """Yield the seconds to wait before each retry, until the budget is spent.

        Elapsed time is the larger of the clock's reading since `started`
        (default: the first `next()`) and the sum of delays yielded so far, so
        the generator ends even when nobody sleeps (pure use in tests).
        """
        if started is None:
            started = self.clock()
        waited = 0.0
        n = 0
        while True:
            delay = backoff_delay(n + 1, self.exp, self.exp_max, self.rng)
            elapsed = max(self.clock() - started, waited)
            if elapsed + delay > self.stop_max:
                return
            yield delay
            waited += delay
            n += 1

    def call(self, fn, *, retry_if, describe, on_retry=None):
        """Return fn(); retry while retry_if(exc) holds and the budget allows.

        `describe` names the request in log lines. `on_retry(exc, attempt,
        delay)` runs before each wait (attempt = the number of the next try).
        The last error is re-raised when the policy gives up.
        """
        started = self.clock()
        delays = self.delays(started)
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as exc:
                if not retry_if(exc):
                    raise
                reason = one_line(exc, first_line=True, limit=ENGINE_LIMIT)
                delay = next(delays, None)
                if delay is None:
                    # Only worth a warning when retries happened; a policy
                    # that never retries leaves reporting to the caller.
                    level = logging.WARNING if attempt > 1 and not self.quiet else logging.DEBUG
                    log.log(
                        level,
                        "engine request %s failed: %s; giving up after %d attempt(s) in %.0f s",
                        describe,
                        reason,
                        attempt,
                        self.clock() - started,
                    )
                    raise
                attempt += 1
                left = max(0.0, started + self.stop_max - self.clock())
                log.log(
                    logging.DEBUG if self.quiet else logging.WARNING,
                    "engine request %s failed: %s; retrying in %.1f s "
                    "(attempt %d, giving up in %.0f s)",
                    describe,
                    reason,
                    delay,
                    attempt,
                    left,
                )
                if on_retry is not None:
                    on_retry(exc, attempt, delay)
                self.sleep(delay)
