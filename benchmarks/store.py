#!/usr/bin/env python3
"""What the store costs per tracker poll: ops/s of the calls a poll pass makes.

Usage:
    python3 -m benchmarks.store [--records 10000] [--mongomock-records 1000]
                                 [--batch 100] [--backends sqlite,mongomock]
                                 [--mongo-url URL]

For each backend: create N tracked records, claim them all in batches with a
fixed `now`, time next_due_at while every record is leased and overdue (its
worst case: it walks the leased rows), reschedule each record with
update_execution(if_lease_owner=...) as the poller does, then time
next_due_at again (the usual case). Figures only; nothing is asserted.

mongomock has no indexes: every query filters and sorts all documents in
Python, so its cost per call grows with N (10,000 records would take hours)
and says nothing about MongoDB; it runs on fewer records by default. Use
--mongo-url for a real server's figures.
"""

import argparse
import os
import tempfile
import time
import uuid

from st2bridge.store.base import new_execution_record

NOW = 1_700_000_000.0


def timed(fn, count):
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return count / elapsed if elapsed else float("inf"), elapsed


def repeated(fn, max_calls, budget=2.0):
    """Call fn up to max_calls times or for about `budget` seconds."""
    start, calls = time.perf_counter(), 0
    while calls < max_calls and (calls < 3 or time.perf_counter() - start < budget):
        fn()
        calls += 1
    elapsed = time.perf_counter() - start
    return calls, calls / elapsed, elapsed


def bench(name, store, records, batch):
    rows = []
    recs = [
        new_execution_record(
            id=str(uuid.uuid4()),
            workflow_name="wf.bench",
            engine_execution_id=str(uuid.uuid4()),
            status="running",
            input={"n": n, "hosts": ["web%d.example.com" % n]},
            created_at=NOW - records + n,
            updated_at=NOW,
            tracked=True,
            next_poll_at=NOW - records + n,
        )
        for n in range(records)
    ]

    def create():
        for record in recs:
            store.create_execution(record)

    rows.append(("create_execution", records, *timed(create, records)))

    claimed = []

    def claim():
        while True:
            got = store.claim_due("bench", NOW, 3600, batch)
            if not got:
                return
            claimed.extend(got)

    batches = -(-records // batch)
    ops, elapsed = timed(claim, batches)
    assert len(claimed) == records, len(claimed)
    rows.append(("claim_due (batches of %d)" % batch, batches, ops, elapsed))
    rows.append(("  = records claimed", records, records / elapsed, elapsed))

    rows.append(("next_due_at (all %d leased)" % records, *repeated(store.next_due_at, 200)))

    def reschedule():
        for n, record in enumerate(claimed):
            store.update_execution(
                record["id"],
                {
                    "next_poll_at": NOW + 5 + n * 1e-3,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "poll_failures": 0,
                    "updated_at": NOW,
                },
                if_lease_owner="bench",
            )

    rows.append(("update_execution", records, *timed(reschedule, records)))

    rows.append(("next_due_at (none leased)", *repeated(store.next_due_at, 5000)))

    print("\n%s (%d records)" % (name, records))
    for label, count, ops, elapsed in rows:
        print("  %-32s %7d calls %11.1f ops/s %8.3f s" % (label, count, ops, elapsed))
    store.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--mongomock-records", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,mongomock")
    parser.add_argument(
        "--mongo-url",
        help="also run against this MongoDB (a scratch database is created and dropped)",
    )
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            from st2bridge.store.sqlite import SqliteStore

            with tempfile.TemporaryDirectory() as tmp:
                bench(
                    "SQLite (file in a temp dir)",
                    SqliteStore(os.path.join(tmp, "b.db")),
                    args.records,
                    args.batch,
                )
        elif backend == "mongomock":
            import mongomock

            from st2bridge.store.mongo import MongoStore

            bench(
                "mongomock (no indexes: not MongoDB's speed)",
                MongoStore(client=mongomock.MongoClient()),
                args.mongomock_records,
                args.batch,
            )
        else:
            parser.error("unknown backend %r" % backend)
    if args.mongo_url:
        import pymongo

        from st2bridge.store.mongo import MongoStore

        client = pymongo.MongoClient(args.mongo_url)
        database = "st2bridge_bench_%s" % uuid.uuid4().hex[:8]
        try:
            bench("MongoDB", MongoStore(client=client, database=database), args.records, args.batch)
        finally:
            client.drop_database(database)
            client.close()


if __name__ == "__main__":
    main()
