"""`st2bridge notification list|resend`: the webhook outbox.

A notification is one result (or status change) of one execution for one
sink: pending (being delivered, or waiting for its next attempt), delivered,
or failed (its deadline passed; `resend` makes it pending again and a
running st2bridge-api delivers it).
"""

import time

from st2bridge import app, errors
from st2bridge.api.notifications import resend, safe_url
from st2bridge.cli import output
from st2bridge.text import shorten

COLUMNS = ["id", "execution", "event", "status", "attempts", "sink", "last_error"]
STATUSES = ("pending", "delivered", "failed")


def add_parser(commands):
    notification = commands.add_parser("notification", help="webhook deliveries of results")
    sub = notification.add_subparsers(dest="notification_command", metavar="COMMAND", required=True)
    ls = sub.add_parser("list", help="notifications, newest first")
    ls.add_argument("--status", choices=STATUSES, help="only those with this status")
    ls.add_argument("--execution", metavar="ID", help="only those of this execution")
    ls.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    again = sub.add_parser("resend", help="deliver a notification again (a failed one, say)")
    again.add_argument("id", metavar="ID")
    again.set_defaults(handler=cmd_resend)


def view(n):
    """A notification as shown: never its secret."""
    return {
        "id": n["id"],
        "execution_id": n["execution_id"],
        "event": n["event"],
        "status": n["status"],
        "attempts": n.get("attempts") or 0,
        "url": safe_url(n["url"]),
        "last_error": n.get("last_error"),
        "created_at": output.iso(n.get("created_at")),
        "next_attempt_at": output.iso(n.get("next_attempt_at"))
        if n["status"] == "pending"
        else None,
        "deadline_at": output.iso(n.get("deadline_at")),
        "delivered_at": output.iso(n.get("delivered_at")),
    }


def cmd_list(args, conf):
    if args.limit < 1:
        raise errors.InputError("--limit must be at least 1")
    with app.build_store(conf) as store:
        execution_id = None
        if args.execution:
            from st2bridge import control

            execution_id = control.resolve(store, args.execution)["id"]
        rows = [
            view(n)
            for n in store.list_notifications(
                status=args.status, execution_id=execution_id, limit=args.limit
            )
        ]
    if args.json:
        print(output.dumps(rows))
    elif not rows:
        print("no notifications")
    else:
        print(
            output.table(
                [
                    dict(r, execution=r["execution_id"], sink=r["url"], last_error=_short(r))
                    for r in rows
                ],
                COLUMNS,
            )
        )
    return errors.EXIT_OK


def _short(row):
    return shorten(row["last_error"] or "", 60)


def cmd_resend(args, conf):
    with app.build_store(conf) as store:
        before = resend(store, args.id, time.time(), conf.notify.deadline_seconds)
    print(
        "notification %s (was %s) is pending again: a running st2bridge-api delivers it "
        "(st2bridge notification list --execution %s)"
        % (before["id"], before["status"], before["execution_id"])
    )
    return errors.EXIT_OK
