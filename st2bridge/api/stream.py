"""The log follower: one reader of the store's change log per process, and the
Server-Sent Events stream that fans it out.

`LogFollower.poll()` reads the entries after its cursor (a cheap indexed
query; `[api] poll_interval` apart) and wakes every waiter. The cursor only
passes a gap in seq once the entry after it is older than `gap_wait`: in
MongoDB an entry is numbered before it is written, so a young gap is one
still being written (SQLite numbers in commit order and has none).
Recent entries are kept in memory; a subscriber further behind (a
reconnect with an old Last-Event-ID) reads the store until it catches up.

SSE: each event is `id: SEQ`, `event: created|status|task|end`, `data: JSON`
(the log entry). A client that reconnects with `Last-Event-ID: SEQ` gets
every entry after it that the store still keeps (`[api] stream_window`); if
some were pruned meanwhile it gets a `reset` event first (re-read what it
needs). A comment line every `keepalive` seconds keeps proxies from closing
an idle stream and finds clients that went away.
"""

import bisect
import datetime
import json
import logging
import time

from st2bridge import concurrency, errors

LOG = logging.getLogger("st2bridge.api.stream")


def settled(entries, cursor, now, gap_wait):
    """The leading entries a reader may take: stops at a gap in seq whose
    next entry was written less than `gap_wait` seconds ago."""
    out, expected = [], cursor + 1
    for entry in entries:
        if entry["seq"] != expected and now - entry.get("written_at", 0) < gap_wait:
            break
        out.append(entry)
        expected = entry["seq"] + 1
    return out


class LogFollower:
    def __init__(self, store, *, buffer_size=20000, gap_wait=1.0, clock=time.time):
        self.store = store
        self.buffer_size = buffer_size
        self.gap_wait = gap_wait
        self.clock = clock
        self.cursor = 0
        self._seqs, self._entries = [], []
        self._cond = concurrency.current().condition()
        self.listeners = []  # called (no arguments) after new entries arrived
        self.stopping = False
        self.subscribers = 0

    def start(self):
        """Begin at the end of the log: a new subscriber sees what happens next."""
        self.cursor = self.store.last_change_seq()
        return self

    def poll(self, limit=1000):
        """Read what is new; the number of entries taken."""
        entries = settled(
            self.store.read_changes(self.cursor, limit), self.cursor, self.clock(), self.gap_wait
        )
        if not entries:
            return 0
        with self._cond:
            self._seqs.extend(e["seq"] for e in entries)
            self._entries.extend(entries)
            if len(self._seqs) > 2 * self.buffer_size:
                del self._seqs[: -self.buffer_size]
                del self._entries[: -self.buffer_size]
            self.cursor = entries[-1]["seq"]
            self._cond.notify_all()
        for listener in self.listeners:
            listener()
        return len(entries)

    def run(self, interval, sleep, stop_requested):
        """Poll until asked to stop; a store outage is retried, logged once."""
        down = False
        while not stop_requested():
            try:
                self.poll()
                if down:
                    LOG.info("change log readable again; the stream goes on")
                down = False
            except errors.StoreError as exc:
                if not down:
                    LOG.warning("cannot read the change log: %s; retrying every 1 s", exc)
                down = True
                sleep(1.0)
            sleep(interval)

    def after(self, seq, limit=1000):
        """Entries with seq > `seq` up to the cursor (from memory, or the store)."""
        with self._cond:
            if self._seqs and seq >= self._seqs[0] - 1 or not self._seqs and seq >= self.cursor:
                start = bisect.bisect_right(self._seqs, seq)
                return self._entries[start : start + limit]
            cursor = self.cursor
        return [e for e in self.store.read_changes(seq, limit) if e["seq"] <= cursor]

    def wait(self, seq, timeout):
        """Wait until the cursor passes `seq` (True) or `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.cursor > seq or self.stopping, timeout)

    def stop(self):
        with self._cond:
            self.stopping = True
            self._cond.notify_all()

    def pruned_before(self, seq):
        """Whether entries after `seq` are gone (from memory and the store)."""
        with self._cond:
            if self._seqs and self._seqs[0] <= seq + 1:
                return False
        first = self.store.read_changes(0, limit=1)
        return bool(first) and first[0]["seq"] > seq + 1


def event_data(entry):
    data = {k: v for k, v in entry.items() if k not in ("written_at", "event_id", "_sse")}
    data["time"] = datetime.datetime.fromtimestamp(entry["at"], datetime.timezone.utc).isoformat(
        timespec="milliseconds"
    )
    return data


def format_event(entry):
    """The event's bytes, made once per entry however many subscribers send it."""
    text = entry.get("_sse")
    if text is None:
        text = entry["_sse"] = (
            "id: %d\nevent: %s\ndata: %s\n\n"
            % (entry["seq"], entry["event"], json.dumps(event_data(entry), ensure_ascii=False))
        ).encode("utf-8")
    return text


def events(feed, last_id=None, execution_id=None, keepalive=15.0):
    """The SSE byte chunks of one subscriber (an iterator the server drains).
    Its position is taken now, not when the server starts reading it."""
    cursor = feed.cursor if last_id is None else last_id
    reset = last_id is not None and feed.pruned_before(last_id)
    return _events(feed, cursor, reset, execution_id, keepalive)


def _events(feed, cursor, reset, execution_id, keepalive):
    with feed._cond:  # streams open and close in request workers
        feed.subscribers += 1
    try:
        yield b"retry: 1000\n\n"
        if reset:
            reason = "events after %d are no longer kept; re-read the executions" % cursor
            yield ("event: reset\ndata: %s\n\n" % json.dumps({"reason": reason})).encode()
        while not feed.stopping:
            entries = feed.after(cursor)
            if entries:
                chunk = []
                for entry in entries:
                    cursor = entry["seq"]
                    if execution_id is None or entry["execution_id"] == execution_id:
                        chunk.append(format_event(entry))
                if chunk:
                    yield b"".join(chunk)
                continue
            if not feed.wait(cursor, keepalive):
                yield b": keepalive\n\n"
    finally:
        with feed._cond:
            feed.subscribers -= 1


def parse_last_id(text):
    """Last-Event-ID as a seq; None when absent; InputError when malformed."""
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise errors.InputError("Last-Event-ID must be an event id (a whole number)") from None
    if value < 0:
        raise errors.InputError("Last-Event-ID must not be negative")
    return value
