"""Clocks for unit tests: time moves only when a test (or a sleep) moves it."""


class Clock:
    """A `clock()` callable standing at `now`."""

    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeTime(Clock):
    """A clock whose `sleep` records the delay and advances the time."""

    def __init__(self, now=0.0):
        super().__init__(now)
        self.slept = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
