"""Results pushed out: the webhook outbox and its delivery.

The outbox is made from the change log, which every writer appends to in the
same transaction (or document update) as the record it changes: an
execution's `end` entry is written atomically with its terminal record,
whoever wrote it (callback, poller, --wait, a rejected submit). The notifier
turns each `end` entry (and `status` entries, for sinks that ask for every
status) into one notification per sink, with ids derived from the entry and
the sink, so doing it twice is harmless; a cursor in the store says how far
the log has been turned into notifications. Then each notification is
claimed with a lease, signed (st2bridge.api.signing) and POSTed; a failure
is retried with capped exponential back-off (`[notify] retry_first_seconds`
doubling up to `retry_max_seconds`) until `deadline_seconds` after it was
made; past the deadline it is kept as `failed`, listed by `st2bridge
notification list` and sent again by `st2bridge notification resend ID`.

One sink gets one execution's notifications in order: a notification is
claimed only when none before it (lower seq) of the same execution and sink
is pending. Delivery is at least once: a process killed after the POST and
before it recorded the delivery sends it again once its lease lapses (the
X-St2bridge-Delivery header lets a receiver see the repeat).

Which process delivers: st2bridge-api. It follows the change log anyway (for
the stream), so an end is seen within `[api] poll_interval`; a slow or dead
sink then holds green threads of the API, not of the trackers, whose
callback latency is what keeps results exact. Several API processes share
the work through the leases; with no API process running, nothing is lost:
the log is not pruned past the notifier's cursor, and the first API process
to start delivers what waited.
"""

import hashlib
import json
import logging
import random
import time
import urllib.parse

import requests

from st2bridge import concurrency, errors
from st2bridge.api import signing
from st2bridge.api.executions import record_view
from st2bridge.cli import output

LOG = logging.getLogger("st2bridge.api.notifications")
CURSOR = "notify"
USER_AGENT = "st2bridge-notifier"


def sink_digest(url):
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def safe_url(url):
    """The URL without credentials or query (for logs)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += ":%d" % parts.port
    return "%s://%s%s" % (parts.scheme, host, parts.path)


def backoff(attempts, first, most, rng=random.random):
    """Seconds before attempt `attempts + 1`: first * 2^(attempts-1), capped,
    with +-20% jitter so that sinks coming back are not hit all at once."""
    delay = min(most, first * (2 ** max(0, attempts - 1)))
    return delay * (0.8 + 0.4 * rng())


class Notifier:
    def __init__(
        self,
        store,
        feed,
        owner,
        *,
        global_sinks=(),
        every_status=False,
        retry_first=1.0,
        retry_max=300.0,
        deadline=86400.0,
        timeout=10.0,
        lease_seconds=60.0,
        spawn=None,
        clock=time.time,
        session=None,
    ):
        self.store = store
        self.feed = feed
        self.owner = owner
        self.global_sinks = [dict(s, every_status=every_status) for s in global_sinks]
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.deadline = deadline
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self.spawn = spawn or (lambda fn, *args: fn(*args))
        self.clock = clock
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.cursor = None
        self._cursor_saved_at = 0.0
        self._made = False  # notifications were made since the last claim
        self._claimed_at = 0.0
        # execution id -> whether it has sinks for every status (from its
        # `created` entry): status changes of the others need no record read.
        self._status_sinks = {}
        self.in_flight = set()
        self.counts = concurrency.Tally(delivered=0, retried=0, failed=0)  # from delivery workers
        self.observers = []  # metrics: called with (outcome, seconds from the change)

    # -- the log -> notifications ---------------------------------------------------

    def expand(self):
        """Make the notifications of the log entries up to the feed's cursor."""
        if self.cursor is None:
            self.cursor = self.store.get_cursor(CURSOR)
        upto = self.feed.cursor
        made = 0
        while self.cursor < upto:
            entries = [e for e in self.feed.after(self.cursor, limit=500) if e["seq"] <= upto]
            if not entries:
                break
            rows = []
            for entry in entries:
                rows += self.notifications_for(entry)
            now = self.clock()
            # The stored cursor only saves work after a restart (expanding
            # again is harmless): written with new notifications, or each second.
            if rows or now - self._cursor_saved_at >= 1.0:
                with self.store.transaction():  # one commit for both
                    if rows:
                        made += len(self.store.add_notifications(rows))
                    self.store.advance_cursor(CURSOR, entries[-1]["seq"])
                self._cursor_saved_at = now
            self.cursor = entries[-1]["seq"]
        self._made = self._made or made > 0
        return made

    def notifications_for(self, entry):
        if entry["event"] == "created":
            if len(self._status_sinks) > 100000:
                self._status_sinks.clear()
            self._status_sinks[entry["execution_id"]] = bool(entry.get("status_sinks"))
        if entry["event"] not in ("end", "status"):
            return []
        if (
            entry["event"] == "status"
            and self._status_sinks.get(entry["execution_id"]) is False
            and not any(s["every_status"] for s in self.global_sinks)
        ):
            return []  # nobody wants this status change
        if entry["event"] == "end":
            self._status_sinks.pop(entry["execution_id"], None)
        try:
            record = self.store.get_execution(entry["execution_id"])
        except errors.NotFound:
            return []
        sinks, seen = [], set()
        for sink in (record.get("sinks") or []) + self.global_sinks:
            if sink["url"] in seen:
                continue
            if entry["event"] == "status" and not sink.get("every_status"):
                continue
            seen.add(sink["url"])
            sinks.append(sink)
        if not sinks:
            return []
        now = self.clock()
        body = json.dumps(
            {
                "event": entry["event"],
                "seq": entry["seq"],
                "status": entry["status"],
                "time": output.iso(entry["at"]),
                "execution": record_view(record),
            },
            ensure_ascii=False,
            default=str,
        )
        return [
            {
                "id": "%d-%s" % (entry["seq"], sink_digest(sink["url"])),
                "execution_id": record["id"],
                "seq": entry["seq"],
                "event": entry["event"],
                "sink": sink_digest(sink["url"]),
                "url": sink["url"],
                "secret": sink["secret"],
                "body": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "deadline_at": now + self.deadline,
                "created_at": entry["at"],
            }
            for sink in sinks
        ]

    # -- delivering -------------------------------------------------------------------

    def deliver_due(self, limit=50):
        """Claim what is due and send each in its own green thread; the count."""
        self._made = False
        self._claimed_at = self.clock()
        claimed = self.store.claim_notifications(
            self.owner, self.clock(), self.lease_seconds, limit
        )
        for notification in claimed:
            if notification["id"] in self.in_flight:
                continue
            self.in_flight.add(notification["id"])
            self.spawn(self._deliver, notification)
        return len(claimed)

    def _deliver(self, n):
        try:
            self.deliver(n)
        except errors.StoreError as exc:
            LOG.warning(
                "notification %s: recording its outcome failed: %s; its lease lapses in %.0f s "
                "and it is sent again",
                n["id"],
                exc,
                self.lease_seconds,
            )
        finally:
            self.in_flight.discard(n["id"])

    def deliver(self, n):
        """One attempt: POST, then record delivered, or the next attempt, or failed."""
        body = n["body"].encode("utf-8")
        headers = signing.sign(n["secret"], body, self.clock())
        headers.update(
            {
                "Content-Type": "application/json",
                signing.DELIVERY_HEADER: n["id"],
                signing.EVENT_HEADER: n["event"],
            }
        )
        error = None
        try:
            answer = self.session.post(
                n["url"], data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
            if not 200 <= answer.status_code < 300:
                error = "HTTP %d" % answer.status_code
        except requests.RequestException as exc:
            error = _short(exc)
        now = self.clock()
        attempts = (n.get("attempts") or 0) + 1
        if error is None:
            self.store.update_notification(
                n["id"],
                {
                    "status": "delivered",
                    "attempts": attempts,
                    "delivered_at": now,
                    "last_error": None,
                    "lease_owner": None,
                    "lease_expires_at": None,
                },
                if_lease_owner=self.owner,
            )
            self.counts.add("delivered")
            LOG.info(
                "notification %s (%s of execution %s) delivered to %s (attempt %d)",
                n["id"],
                n["event"],
                n["execution_id"],
                safe_url(n["url"]),
                attempts,
            )
            self._observe("delivered", now - (n.get("created_at") or now))
            return True
        wait = backoff(attempts, self.retry_first, self.retry_max)
        if now + wait > (n.get("deadline_at") or now):
            self.store.update_notification(
                n["id"],
                {
                    "status": "failed",
                    "attempts": attempts,
                    "last_error": "%s; gave up after %d attempts (deadline passed)"
                    % (error, attempts),
                    "lease_owner": None,
                    "lease_expires_at": None,
                },
                if_lease_owner=self.owner,
            )
            self.counts.add("failed")
            LOG.error(
                "notification %s of execution %s to %s failed for good (%s after %d "
                "attempts); `st2bridge notification resend %s` sends it again",
                n["id"],
                n["execution_id"],
                safe_url(n["url"]),
                error,
                attempts,
                n["id"],
            )
            self._observe("failed", None)
            return False
        self.store.update_notification(
            n["id"],
            {
                "attempts": attempts,
                "next_attempt_at": now + wait,
                "last_error": error,
                "lease_owner": None,
                "lease_expires_at": None,
            },
            if_lease_owner=self.owner,
        )
        self.counts.add("retried")
        LOG.warning(
            "notification %s of execution %s to %s failed (%s, attempt %d); trying again in %.1f s",
            n["id"],
            n["execution_id"],
            safe_url(n["url"]),
            error,
            attempts,
            wait,
        )
        self._observe("retried", None)
        return False

    def _observe(self, outcome, seconds):
        for observe in self.observers:
            observe(outcome, seconds)

    # -- the loop -------------------------------------------------------------------------

    def run(self, wake, sleep_until_woken, stop_requested, tick=0.25):
        """Expand and deliver whenever the feed has news, and every `tick`
        for retries that came due; store trouble is logged and retried."""
        down = False
        while not stop_requested():
            try:
                self.expand()
                # A claim when notifications were just made, or each tick for
                # retries that came due (not on every change of the log).
                if self._made or self.clock() - self._claimed_at >= tick:
                    self.deliver_due()
                if down:
                    LOG.info("store reachable again; notifications go on")
                down = False
            except errors.StoreError as exc:
                if not down:
                    LOG.warning("notifications paused: %s; retrying every %.2f s", exc, tick)
                down = True
            sleep_until_woken(tick)


def _short(exc):
    text = " ".join(str(exc).split())  # not one_line: the class name is always shown
    return type(exc).__name__ + (": " + text[:200] if text else "")


def resend(store, notification_id, now, deadline):
    """Make a notification pending again (any status); the record."""
    n = store.get_notification(notification_id)
    store.update_notification(
        notification_id,
        {
            "status": "pending",
            "next_attempt_at": now,
            "deadline_at": now + deadline,
            "lease_owner": None,
            "lease_expires_at": None,
        },
    )
    return n
