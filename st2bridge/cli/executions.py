"""`st2bridge execution …` and `st2bridge task rerun`: the operator's commands.

list/get read the store (get also asks the engine for the error tree of a
failure); tasks and watch read the engine; cancel/pause/resume and rerun
change it (st2bridge.control). Text for people; `-f json|yaml|value` and
`-c COLUMN` for scripts (st2bridge.cli.output). An execution is named by its
bridge id, the engine's execution id, or a unique start of either. Commands
that ask the engine give up after `[engine] interactive_retry_seconds`.
"""

import json
import sys
import time

from st2bridge import app, control, errors, errortree, redact, results, taskview
from st2bridge import status as st
from st2bridge.cli import hints, output, timespec
from st2bridge.text import one_line

LIST_COLUMNS = ["id", "workflow", "status", "started", "duration", "finished_by"]
# The JSON fields of a list row; -c takes these or the table's column names.
LIST_FIELDS = [
    "id",
    "workflow_name",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "finished_by",
    "engine_execution_id",
    "engine_state",
]
LIST_ALIASES = {"workflow": "workflow_name", "started": "started_at", "duration": "duration_s"}
# One vocabulary: the bridge's status first; the engine's state beside it.
TASK_COLUMNS = [
    "task",
    "status",
    "engine_state",
    "started",
    "duration",
    "retries",
    "workflow",
    "id",
]
TASK_FIELDS = [
    "id",
    "name",
    "label",
    "status",
    "state",
    "workflow",
    "workflow_execution_id",
    "created_at",
    "started_at",
    "finished_at",
    "duration_s",
    "retries",
    "state_info",
    "parent_task_id",
    "index",
    "item",
]
TASK_ALIASES = {
    "task": "label",
    "engine_state": "state",
    "started": "started_at",
    "duration": "duration_s",
}
GET_FIELDS = [
    "id",
    "status",
    "workflow_name",
    "engine_execution_id",
    "engine_state",
    "input",
    "output",
    "error",
    "tasks",
    "finished_by",
    "created_at",
    "submitted_at",
    "updated_at",
    "ended_at",
    "engine_created_at",
    "engine_updated_at",
    "error_tree",
]


def add_parsers(commands):
    execution = commands.add_parser("execution", help="inspect and control executions")
    sub = execution.add_subparsers(dest="execution_command", metavar="COMMAND", required=True)
    ident = "a bridge execution id, the engine's execution id, or a unique start of either"

    ls = sub.add_parser("list", help="executions, newest first")
    ls.add_argument(
        "--status", metavar="S", help="only these statuses (comma-separated): " + ", ".join(st.ALL)
    )
    ls.add_argument("--workflow", metavar="W", help="only executions of this workflow")
    ls.add_argument(
        "--since",
        metavar="T",
        help="started at or after T: an ISO time "
        "(UTC unless it has an offset) or a span back from now (30m, 1h, 2d)",
    )
    ls.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    output.add_format_options(ls, LIST_FIELDS)
    ls.set_defaults(handler=cmd_list)

    get = sub.add_parser("get", help="one execution; for a failure, what failed and the fix")
    get.add_argument("id", help=ident)
    get.add_argument(
        "--show-secrets",
        action="store_true",
        help="show secret input values (keys like password, token, secret, key, or "
        "listed in [DEFAULT] secret_input_keys) instead of ***",
    )
    output.add_format_options(get, GET_FIELDS)
    get.set_defaults(handler=cmd_get)

    tasks = sub.add_parser("tasks", help="an execution's tasks, sub-workflows included")
    tasks.add_argument("id", help=ident)
    output.add_format_options(tasks, TASK_FIELDS)
    tasks.set_defaults(handler=cmd_tasks)

    watch = sub.add_parser(
        "watch", help="follow an execution until it ends (exit 0 if it succeeded, 1 otherwise)"
    )
    watch.add_argument("id", help=ident)
    watch.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to ask the engine (default 1)",
    )
    watch.add_argument("--json", action="store_true", help="JSON lines: progress, then the record")
    watch.set_defaults(handler=cmd_watch)

    for name, text in (
        ("cancel", "cancel an execution and its sub-workflows (also one that timed out)"),
        ("pause", "pause an execution and its sub-workflows"),
        ("resume", "resume a paused execution and its sub-workflows"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", help=ident)
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_change, action=name)

    task = commands.add_parser("task", help="act on one engine task")
    task_sub = task.add_subparsers(dest="task_command", metavar="COMMAND", required=True)
    rerun = task_sub.add_parser(
        "rerun", help="re-run a failed task; its execution is tracked again until it ends"
    )
    rerun.add_argument("task_id", metavar="TASK_ID")
    rerun.add_argument(
        "--no-reset",
        dest="reset",
        action="store_false",
        help="keep the task's successful with-items iterations",
    )
    rerun.add_argument("--json", action="store_true")
    rerun.set_defaults(handler=cmd_rerun)
    return sub


# -- list -----------------------------------------------------------------------


def parse_statuses(text):
    if not text:
        return None
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in st.ALL]
    if unknown:
        raise errors.InputError(
            "unknown status %s (one of: %s)" % (", ".join(unknown), ", ".join(st.ALL))
        )
    return wanted


def list_row(record, now):
    end = record.get("ended_at")
    took = output.duration_s(record, now)
    return {
        "id": record["id"],
        "workflow_name": record["workflow_name"],
        "status": record["status"],
        "started_at": output.iso(record["created_at"]),
        "ended_at": output.iso(end),
        "duration_s": round(took, 3) if took is not None else None,
        "finished_by": record.get("finished_by"),
        "engine_execution_id": record["engine_execution_id"],
        "engine_state": record.get("engine_state"),
    }


def list_text(rows, width=None):
    """Rows of list_row as a table; an active execution's duration so far ends in '+'."""
    shown = [
        {
            "id": r["id"],
            "workflow": r["workflow_name"],
            "status": r["status"],
            "started": (r["started_at"] or "")[:19].replace("T", " ") or None,
            "duration": (
                timespec.duration(r["duration_s"]) + ("" if r["ended_at"] else "+")
                if r["duration_s"] is not None
                else None
            ),
            "finished_by": r["finished_by"],
        }
        for r in rows
    ]
    return output.table(shown, LIST_COLUMNS, width) if shown else "no executions"


def cmd_list(args, conf):
    now = time.time()
    since = timespec.parse_since(args.since, now) if args.since else None
    if args.limit < 1:
        raise errors.InputError("--limit must be at least 1")
    statuses = parse_statuses(args.status)
    with app.build_store(conf, create=False) as store:
        records = store.list_executions(
            status=statuses, workflow_name=args.workflow, since=since, limit=args.limit
        )
    rows = [list_row(r, now) for r in records]
    output.emit_rows(
        args,
        rows,
        LIST_FIELDS,
        lambda rows: list_text(rows, output.terminal_width()),
        LIST_ALIASES,
        empty="no executions",
    )
    return errors.EXIT_OK


# -- get ------------------------------------------------------------------------


def error_tree(engine, record):
    """The engine's error tree of a failed execution; None when there is none
    or it cannot be had (a note goes to stderr)."""
    if record["status"] != st.FAILED or record.get("engine_state") != "ERROR":
        return None
    try:
        return errortree.from_report(
            engine.execution_report(record["engine_execution_id"]), record.get("tasks")
        )
    except errors.EngineError as exc:
        print(
            "st2bridge: note: no error tree from the engine: %s" % one_line(exc),
            file=sys.stderr,
        )
        return None


def get_text(record, tree, prog="st2bridge"):
    if tree:
        # The engine's message repeats the whole tree: its first line is enough here.
        # Mistral's output of a failed execution is that same message.
        short = one_line(record.get("error"), first_line=True) or None
        out = record.get("output")
        if (
            isinstance(out, dict)
            and list(out) == ["result"]
            and out["result"] == record.get("error")
        ):
            out = {"result": short}
        record = dict(record, error=short, output=out)
    lines = [output.execution_text(record, show_secrets=True)]  # masked by the caller
    if tree:
        lines.append("error tree (from the engine):")
        lines += errortree.render(tree)
        leaves = errortree.failed_leaves(tree)
        if leaves:
            lines.append("re-run the failed task%s with:" % ("s" if len(leaves) > 1 else ""))
            lines += ["  " + errortree.rerun_command(task["id"], prog) for task, _ in leaves]
    return "\n".join(lines)


def cmd_get(args, conf):
    with app.build_store(conf, create=False) as store:
        record = control.resolve(store, args.id)
    tree = None
    if record["status"] == st.FAILED:
        with app.build_engine(conf, retry=False, interactive=True) as engine:
            tree = error_tree(engine, record)
    view = output.execution_view(record, show_secrets=args.show_secrets)
    view["error_tree"] = tree
    shown = record if args.show_secrets else redact.mask_record(record)
    output.emit_one(args, view, lambda: get_text(shown, tree, hints.prog(args)))
    return errors.EXIT_OK


# -- tasks ----------------------------------------------------------------------


def task_rows(engine, root_id, now):
    """Every task of an execution and of its sub-workflows: each workflow's
    tasks by creation, a sub-workflow's tasks right after the task that ran
    it (with-items instances by index), each labelled (st2bridge.taskview)."""
    runs, subs = {}, {}
    for sub in engine.list_executions(root_execution_id=root_id, fields=taskview.SUB_FIELDS):
        if sub.get("id") != root_id:
            runs.setdefault(sub.get("task_execution_id"), []).append(sub)
            subs[sub["id"]] = taskview.sub_info(sub)
    rows = []

    def add(execution_id, workflow):
        for task in _in_order(engine.list_tasks(execution_id)):
            rows.append(dict(_task_row(task, workflow, now), workflow_execution_id=execution_id))
            for sub in sorted(
                runs.get(task.get("id"), []), key=lambda s: subs[s["id"]]["index"] or 0
            ):
                add(sub["id"], sub.get("workflow_name"))

    add(root_id, None)
    return taskview.labelled(rows, root_id, subs)


def _in_order(tasks):
    """By creation; within one second (the engine's resolution) a task comes
    after the task that triggered it (runtime_context.triggered_by)."""
    by_id = {t.get("id"): t for t in tasks}

    def depth(task, seen=()):
        context = (
            task.get("runtime_context") if isinstance(task.get("runtime_context"), dict) else {}
        )
        parents = [
            by_id[p["task_id"]]
            for p in context.get("triggered_by") or []
            if isinstance(p, dict) and p.get("task_id") in by_id and p["task_id"] not in seen
        ]
        return 1 + max(depth(p, seen + (task.get("id"),)) for p in parents) if parents else 0

    return sorted(tasks, key=lambda t: (t.get("created_at") or "", depth(t)))


def _task_row(task, workflow, now):
    started = results.engine_time(task.get("started_at"))
    finished = results.engine_time(task.get("finished_at"))
    end = (
        finished
        if finished is not None
        else (None if task.get("state") in st.ENGINE_TERMINAL else now)
    )
    context = task.get("runtime_context") if isinstance(task.get("runtime_context"), dict) else {}
    retries = (context.get("retry_task_policy") or {}).get("retry_no")
    with_items = context.get("with_items")
    return {
        "id": task.get("id"),
        "name": task.get("name"),
        "status": st.from_engine(task.get("state")),
        "state": task.get("state"),
        "items": with_items.get("count") if isinstance(with_items, dict) else None,
        "workflow": workflow,
        "workflow_execution_id": task.get("workflow_execution_id"),
        "created_at": task.get("created_at"),
        "started_at": task.get("started_at"),
        "finished_at": task.get("finished_at"),
        "duration_s": round(end - started, 3) if started is not None and end else None,
        "retries": retries,
        "state_info": one_line(task.get("state_info"), first_line=True) or None,
    }


def tasks_text(rows, width=None):
    if not rows:
        return "no tasks"
    return output.table(
        [
            dict(
                r,
                task=r["label"],
                started=r["started_at"],
                duration=_task_duration(r),
                engine_state=r["state"],
            )
            for r in rows
        ],
        TASK_COLUMNS,
        width,
    )


def _task_duration(row):
    """The engine's task times have one-second resolution: below that, '<1s'."""
    if row["duration_s"] is None:
        return None
    text = "<1s" if row["duration_s"] < 1 else timespec.duration(row["duration_s"])
    return text + ("" if row["finished_at"] else "+")


def cmd_tasks(args, conf):
    with app.build_store(conf, create=False) as store:
        record = control.resolve(store, args.id)
    with app.build_engine(conf, interactive=True) as engine:
        rows = task_rows(engine, record["engine_execution_id"], time.time())
    output.emit_rows(
        args,
        rows,
        TASK_FIELDS,
        lambda rows: tasks_text(rows, output.terminal_width()),
        TASK_ALIASES,
        empty="no tasks",
    )
    return errors.EXIT_OK


# -- watch ----------------------------------------------------------------------


def progress(record):
    tasks = record.get("tasks") or []
    return {
        "id": record["id"],
        "status": record["status"],
        "tasks_done": sum(1 for t in tasks if t.get("status") in st.TERMINAL),
        "tasks_total": len(tasks),
        "running": [t.get("name") for t in tasks if t.get("status") not in st.TERMINAL],
    }


def cmd_watch(args, conf):
    def show(record):
        if args.json:
            print(json.dumps(progress(record), ensure_ascii=False), flush=True)
        else:
            print("%s  %s" % (time.strftime("%H:%M:%S"), output.progress_line(record)), flush=True)

    with app.build_store(conf, create=False) as store:
        record = control.resolve(store, args.id)
        if not st.is_terminal(record["status"]):
            if not args.json:
                print(
                    "watching execution %s (workflow %s); Ctrl-C stops watching, not the "
                    "execution" % (record["id"], record["workflow_name"]),
                    flush=True,
                )
            with app.build_engine(conf, interactive=True) as engine:
                runner = app.build_runner(conf, engine, store)
                record = runner.wait(
                    record["id"], interval=max(0.2, args.interval), on_progress=show
                )
    tree = None
    if record["status"] == st.FAILED:
        with app.build_engine(conf, retry=False, interactive=True) as engine:
            tree = error_tree(engine, record)
    if args.json:
        view = dict(output.execution_view(record), error_tree=tree)
        print(json.dumps(view, ensure_ascii=False))
    else:
        print(get_text(redact.mask_record(record), tree, hints.prog(args)))
    return errors.EXIT_OK if record["status"] == st.SUCCEEDED else errors.EXIT_FAILED


# -- cancel / pause / resume, rerun ----------------------------------------------------

CONFIRMED_BY = "a tracker, a callback or `st2bridge execution watch` records"


def cmd_change(args, conf):
    with (
        app.build_store(conf, create=False) as store,
        app.build_engine(conf, interactive=True) as engine,
    ):
        record = control.resolve(store, args.id)
        result = control.change_state(engine, store, record["id"], args.action)
    if args.json:
        print(
            output.dumps(
                {
                    "id": result.id,
                    "action": result.action,
                    "status": result.status,
                    "engine_state": result.engine_state,
                    "changed": result.changed,
                }
            )
        )
    elif result.status == st.TIMEOUT:
        print(
            "execution %s had timed out; the engine has it %s now%s"
            % (
                result.id,
                result.engine_state,
                ", sub-workflows included" if result.changed else " (it had ended already)",
            )
        )
    elif not result.changed:
        print("execution %s is %s already; nothing to do" % (result.id, result.status))
    else:
        done = control.ACTIONS[result.action].done
        print(
            "execution %s is %s: the engine has it %s, sub-workflows included; %s `%s` "
            "when it sees that"
            % (result.id, result.status, result.engine_state, CONFIRMED_BY, done)
        )
    return errors.EXIT_OK


def cmd_rerun(args, conf):
    with (
        app.build_store(conf, create=False) as store,
        app.build_engine(conf, interactive=True) as engine,
    ):
        result = control.rerun_task(engine, store, args.task_id, reset=args.reset)
    if args.json:
        print(
            output.dumps(
                {
                    "execution_id": result.execution_id,
                    "task_id": result.task_id,
                    "task_name": result.task_name,
                    "workflow_name": result.workflow_name,
                    "reopened": result.reopened,
                    "reset": result.reset,
                    "status": st.RUNNING,
                }
            )
        )
    else:
        print(
            "task %s (%s, workflow %s) is running again; execution %s is %stracked until it "
            "ends (st2bridge execution watch %s)"
            % (
                result.task_name,
                result.task_id,
                result.workflow_name,
                result.execution_id,
                "reopened and " if result.reopened else "",
                result.execution_id,
            )
        )
    return errors.EXIT_OK
