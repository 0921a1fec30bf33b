"""A fault hook for a (mongomock) MongoDB client: the server refusing connections for a while.

    outage = Outage(select_timeout=2.0)
    store = MongoStore(client=FaultyClient(mongomock.MongoClient(), outage), database="db")
    outage.start(10)       # for 10 s every operation through the client fails

While an outage is on, every operation fails as pymongo fails when the server refuses connections:
AutoReconnect ("connection refused") at once, or ServerSelectionTimeoutError after waiting
`select_timeout` (pymongo's serverSelectionTimeoutMS) unless the outage ends meanwhile, in which
case it is served. The first `cut_writes` writes of each outage are applied and then raise
AutoReconnect: the connection cut while the server's answer was on its way. Cursors fail when
read, as pymongo's do. Used by tests/faults/mongo_stage.py and tests/unit/test_mongo_faults.py.
"""

import collections
import random
import time

from pymongo import errors as mongo_errors

WRITES = {
    "insert_one",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "find_one_and_update",
}


class Outage:
    """The switch FaultyClient consults on every operation, and what it did."""

    def __init__(self, select_timeout=2.0, cut_writes=2, refused=0.5, seed=0):
        self.select_timeout = select_timeout
        self.cut_writes = cut_writes
        self.refused = refused  # the share of operations refused at once
        self.until = 0.0
        self._cut_left = 0
        self._rng = random.Random(seed)
        self.counts = collections.Counter()

    def start(self, seconds):
        self._cut_left = self.cut_writes
        self.until = time.monotonic() + seconds

    def stop(self):
        self.until = 0.0

    def active(self):
        return time.monotonic() < self.until

    def call(self, op, fn, *args, **kwargs):
        if not self.active():
            return fn(*args, **kwargs)
        if op in WRITES and self._cut_left > 0:
            self._cut_left -= 1
            fn(*args, **kwargs)
            self.counts["%s applied, answer lost (AutoReconnect)" % op] += 1
            raise mongo_errors.AutoReconnect("127.0.0.1:27017: connection closed")
        if self._rng.random() < self.refused:
            self.counts["AutoReconnect"] += 1
            raise mongo_errors.AutoReconnect("127.0.0.1:27017: [Errno 111] Connection refused")
        deadline = time.monotonic() + self.select_timeout
        while self.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.active():  # the server came back while pymongo was selecting it
            self.counts["waited, then served"] += 1
            return fn(*args, **kwargs)
        self.counts["ServerSelectionTimeoutError"] += 1
        raise mongo_errors.ServerSelectionTimeoutError(
            "127.0.0.1:27017: [Errno 111] Connection refused (configured timeouts: "
            "socketTimeoutMS: 20000.0ms, connectTimeoutMS: %dms), Timeout: %.1fs"
            % (self.select_timeout * 1000, self.select_timeout)
        )


class _Proxy:
    def __init__(self, target, outage):
        self._target, self._outage = target, outage

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            result = self._outage.call(name, attr, *args, **kwargs)
            return self._wrap(result)

        return call

    def _wrap(self, result):
        return result


class FaultyCursor(_Proxy):
    """A cursor: sort/limit/batch_size chain; each batch read may fail (pymongo reads lazily)."""

    def _wrap(self, result):
        return FaultyCursor(result, self._outage) if result is self._target else result

    def __iter__(self):
        return self

    def __next__(self):
        return self._outage.call("next", next, self._target)


class FaultyCollection(_Proxy):
    def __getattr__(self, name):
        if name == "find":
            # Lazy as in pymongo: the query goes out when the cursor is read.
            return lambda *args, **kwargs: FaultyCursor(
                self._target.find(*args, **kwargs), self._outage
            )
        return super().__getattr__(name)


class FaultyDatabase(_Proxy):
    def __getitem__(self, name):
        return FaultyCollection(self._target[name], self._outage)


class FaultyClient(_Proxy):
    """A (mongomock) client whose every operation goes through `outage`."""

    def __getitem__(self, name):
        return FaultyDatabase(self._target[name], self._outage)

    def close(self):
        pass
