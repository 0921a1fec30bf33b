"""What the poller counts, for the daemon's heartbeat and the benchmarks.

Lateness (how long after its due time a check ran) is kept as a histogram
of whole milliseconds, not a list of samples: it costs the same at 100 or
100,000 checks per report window, and no sample is ever dropped, so a p99
is over every check made (a capped list once hid the slowest checks of a
busy window). Above 10 s the buckets are 100 ms wide.
"""

from st2bridge import concurrency

EXACT_MS = 10_000  # 1 ms buckets up to here
COARSE_MS = 100  # bucket width above it


def _bucket(ms):
    ms = int(ms)
    return ms if ms < EXACT_MS else ms - ms % COARSE_MS


class LatenessHistogram:
    def __init__(self):
        self.counts = {}
        self.count = 0
        self.max_ms = 0.0

    def add(self, seconds):
        ms = seconds * 1000.0
        key = _bucket(ms)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.count += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def percentile(self, p):
        """The bucket (ms) holding the p-th percentile (nearest rank)."""
        if not self.count:
            return None
        rank = min(self.count - 1, int(p * self.count))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen > rank:
                return float(key)
        return float(max(self.counts))

    def summary(self):
        """p50/p99/max (ms) and the number of checks they are over."""
        if not self.count:
            return {"p50": None, "p99": None, "max": None, "count": 0}
        return {
            "p50": self.percentile(0.50),
            "p99": self.percentile(0.99),
            "max": round(self.max_ms, 1),
            "count": self.count,
        }


class PollStats:
    """Counters the daemon reports with each heartbeat."""

    def __init__(self):
        self.polls = 0
        self.lateness = LatenessHistogram()
        self._lock = concurrency.current().lock()  # pool workers count at once
        # Metrics hook: called as each check is made, with its lateness (s;
        # None for a record that was not due at a time, e.g. a callback's).
        self.observe_check = None

    def polled(self, record, now):
        late = max(0.0, now - record["next_poll_at"]) if record.get("next_poll_at") else None
        with self._lock:
            self.polls += 1
            if late is not None:
                self.lateness.add(late)
        if self.observe_check:
            self.observe_check(late)

    def take_lateness(self):
        """p50/p99/max lateness (ms) since the last call, and the check count."""
        with self._lock:
            window, self.lateness = self.lateness, LatenessHistogram()
        return window.summary()
