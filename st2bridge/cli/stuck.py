"""`st2bridge execution list --stuck` and `st2bridge execution recover ID`.

The flag comes from the trackers' stuck watch (st2bridge/tracker/stuckwatch.py);
recover diagnoses afresh and acts through the engine (st2bridge/recover.py).
"""

import sys
import time

from st2bridge import app, control, errors, recover
from st2bridge import status as st
from st2bridge.cli import executions, output, timespec
from st2bridge.tracker import stuckview
from st2bridge.tracker.stuckwatch import EngineBounds, settings_from_config

STUCK_COLUMNS = ["id", "workflow", "signature", "since", "task", "fix"]
STUCK_FIELDS = [
    "id",
    "workflow_name",
    "status",
    "engine_execution_id",
    "stuck",
    "stuck_for_s",
    "task",
]


def add_parsers(execution_sub):
    """Extend `execution list` with --stuck; add `execution recover`."""
    ls = execution_sub.choices["list"]
    ls.add_argument(
        "--stuck",
        action="store_true",
        help="only executions the trackers flagged stuck: signature, since when, evidence, fix",
    )
    ls.set_defaults(handler=cmd_list)

    rec = execution_sub.add_parser(
        "recover",
        help="get a stuck execution moving again (through the engine's API), then follow it",
    )
    rec.add_argument("id")
    rec.add_argument("--dry-run", action="store_true", help="say what would be done; do nothing")
    rec.add_argument(
        "--no-rerun",
        dest="rerun",
        action="store_false",
        help="lost action: do not re-run the task when failing its action fails the workflow",
    )
    rec.add_argument(
        "--no-wait", dest="wait", action="store_false", help="do not follow it to its end"
    )
    rec.add_argument(
        "--settle",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the engine to act on each step (default 30)",
    )
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(handler=cmd_recover)


# -- list --stuck ---------------------------------------------------------------------


def stuck_row(record, now):
    shown = stuckview.view(record)
    evidence = shown["evidence"]
    task = evidence.get("task") or {}
    return {
        "id": record["id"],
        "workflow_name": record["workflow_name"],
        "status": record["status"],
        "engine_execution_id": record["engine_execution_id"],
        "stuck": shown,
        "stuck_for_s": round(max(0.0, now - (record["stuck"].get("since") or now)), 1),
        "task": task.get("name"),
    }


def cmd_list(args, conf):
    if not args.stuck:
        return executions.cmd_list(args, conf)
    if args.limit < 1:
        raise errors.InputError("--limit must be at least 1")
    now = time.time()
    since = timespec.parse_since(args.since, now) if args.since else None
    statuses = executions.parse_statuses(args.status)
    with app.build_store(conf, create=False) as store:
        records = store.list_stuck(limit=None)
    records = [
        r
        for r in records
        if (args.workflow is None or r["workflow_name"] == args.workflow)
        and (since is None or r["created_at"] >= since)
        and (statuses is None or r["status"] in statuses)
    ][: args.limit]
    rows = [stuck_row(r, now) for r in records]

    def text(rows):
        shown = [
            {
                "id": r["id"],
                "workflow": r["workflow_name"],
                "signature": r["stuck"]["signature"],
                "since": "%s ago" % timespec.duration(r["stuck_for_s"]),
                "task": r["task"],
                "fix": r["stuck"]["command"],
            }
            for r in rows
        ]
        return output.table(shown, STUCK_COLUMNS, output.terminal_width()) + (
            "\ndetails: st2bridge execution get ID"
        )

    output.emit_rows(
        args,
        rows,
        STUCK_FIELDS,
        text,
        {"workflow": "workflow_name", "since": "stuck_for_s"},
        empty="no stuck executions",
    )
    return errors.EXIT_OK


# -- recover ----------------------------------------------------------------------------


def cmd_recover(args, conf):
    def say(line):
        if not args.json:
            print(line, flush=True)

    with (
        app.build_store(conf, create=False) as store,
        app.build_engine(conf, interactive=True) as engine,
    ):
        args.id = control.resolve(store, args.id)["id"]
        recovery = recover.Recovery(
            engine,
            store,
            settings_from_config(conf.stuck),
            EngineBounds(engine, store, conf.stuck),
            rerun=args.rerun,
            settle=max(0.0, args.settle),
        )
        plan = recovery.plan(args.id)
        finding = plan.finding
        say("execution %s is stuck: %s" % (args.id, finding.signature))
        say("  " + finding.reason)
        if args.dry_run:
            for step in plan.steps:
                say("would: " + step.text)
            if args.json:
                print(output.dumps(_json(plan, dry_run=True)))
            return errors.EXIT_OK
        recovery.carry_out(plan, on_step=lambda line: say("done: " + line))
        record = store.get_execution(args.id)
        if args.wait and not st.is_terminal(record["status"]):
            say("following execution %s to its end (Ctrl-C stops following, not it)" % args.id)
            runner = app.build_runner(conf, engine, store)
            record = runner.wait(
                args.id,
                on_progress=lambda r: print(
                    "  " + output.progress_line(r), file=sys.stderr, flush=True
                ),
            )
    if args.json:
        print(output.dumps(dict(_json(plan, dry_run=False), status=record["status"])))
    else:
        print("execution %s is %s" % (args.id, record["status"]))
    if not args.wait:
        return errors.EXIT_OK
    return errors.EXIT_OK if record["status"] == st.SUCCEEDED else errors.EXIT_FAILED


def _json(plan, dry_run):
    return {
        "id": plan.record["id"],
        "signature": plan.finding.signature,
        "reason": plan.finding.reason,
        "evidence": plan.finding.evidence,
        "dry_run": dry_run,
        "steps": [s.text for s in plan.steps],
        "done": plan.done,
    }
