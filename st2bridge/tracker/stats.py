"""Counters of the polling pass, reported with each heartbeat and as metrics."""


class PollStats:
    """Counters the daemon reports with each heartbeat."""

    WINDOW = 20000  # lateness samples kept between two reports

    def __init__(self):
        self.polls = 0
        self.lateness = []
        self.observe_lateness = None  # metrics hook: called with each lateness (s)

    def polled(self, record, now):
        self.polls += 1
        if record.get("next_poll_at"):
            late = max(0.0, now - record["next_poll_at"])
            if len(self.lateness) < self.WINDOW:
                self.lateness.append(late)
            if self.observe_lateness:
                self.observe_lateness(late)

    def take_lateness(self):
        """p50/p99/max lateness (ms) since the last call, and the sample count."""
        samples, self.lateness = sorted(self.lateness), []
        if not samples:
            return {"p50": None, "p99": None, "max": None, "count": 0}

        def pct(p):
            return round(samples[min(len(samples) - 1, int(p * len(samples)))] * 1000, 1)

        return {
            "p50": pct(0.50),
            "p99": pct(0.99),
            "max": round(samples[-1] * 1000, 1),
            "count": len(samples),
        }
