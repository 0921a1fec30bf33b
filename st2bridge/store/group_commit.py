"""Group commit: concurrent writers share one store transaction.

Callbacks arrive many at a time and each one is a small write; a commit per
write was a sixth of the tracker's CPU under load. The first writer to arrive
leads: it yields once so that writers running concurrently can queue up, then
applies the whole queue in one transaction and wakes the others. Each writer
still gets its own result or exception, and returns only once its write is
committed. The lock, the events and the yield come from the concurrency
backend: the same code under green threads and native ones.
"""

from st2bridge import concurrency


class GroupCommit:
    def __init__(self, store, backend=None):
        self.store = store
        self._backend = backend or concurrency.current()
        self._mutex = self._backend.lock()
        self._queue = []
        self._busy = False  # a leader is collecting or committing
        self.batches = 0  # counts, for the benchmark and tests
        self.writes = 0

    def run(self, write):
        """Call `write()` inside a shared transaction; its result (or raise)."""
        entry = {"write": write, "done": self._backend.event()}
        with self._mutex:
            self._queue.append(entry)
            lead = not self._busy
            self._busy = True
        if not lead:
            entry["done"].wait()
            if not entry.pop("lead", False):
                return _outcome(entry)
        self._backend.yield_()  # let concurrent writers join this batch
        with self._mutex:
            batch, self._queue = self._queue, []
        self._commit(batch)
        with self._mutex:
            self.batches += 1
            self.writes += len(batch)
            if self._queue:  # arrived while committing: next leader
                self._queue[0]["lead"] = True
                self._queue[0]["done"].set()
            else:
                self._busy = False
        return _outcome(entry)

    def _commit(self, batch):
        try:
            with self.store.transaction():
                for entry in batch:
                    try:
                        entry["result"] = entry["write"]()
                    except Exception as exc:  # this write only; the others go on
                        entry["error"] = exc
        except Exception as exc:  # the commit failed: so did every write
            for entry in batch:
                entry.pop("result", None)
                entry.setdefault("error", exc)
        for entry in batch:
            entry["done"].set()


def _outcome(entry):
    if "error" in entry:
        raise entry["error"]
    return entry.get("result")
