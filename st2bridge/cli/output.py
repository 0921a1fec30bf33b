"""How records are shown: JSON for scripts, aligned text for people.

The OpenStack CLI's output options on every list/get/tasks command:
`-f table|json|yaml|value` and `-c COLUMN` (repeatable; a JSON field name or
a table column, any case); `--json` is `-f json`. Tables fit the terminal
when stdout is one: the widest columns are cut with "…", ids last.
"""

import argparse
import datetime
import json
import shutil
import sys

import yaml

from st2bridge import errors, redact, results, taskview
from st2bridge import status as st
from st2bridge.text import one_line
from st2bridge.tracker import stuckview

FORMATS = ("table", "json", "yaml", "value")
ELLIPSIS = "…"


def iso(ts):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(
        timespec="milliseconds"
    )


def duration_s(record, now=None):
    return results.duration(record, now)


def task_view(t, root=None):
    """One task row as `--json` shows it."""
    return {
        "name": t.get("name"),
        "label": taskview.display_label(t, root),
        "status": t.get("status"),
        "state": t.get("state"),
        "id": t.get("id"),
        "state_info": t.get("state_info"),
        "started_at": t.get("started_at"),
        "finished_at": t.get("finished_at"),
        "workflow_execution_id": t.get("workflow_execution_id"),
        "workflow_name": t.get("workflow_name"),
        "parent_task_id": t.get("parent_task_id"),
        "index": t.get("index"),
        "item": t.get("item"),
    }


def execution_view(record, show_secrets=False):
    """The stable JSON shape of an execution (documented in the README).
    Secret input values are masked unless `show_secrets`. `*_at` are the
    bridge's own times (ISO 8601, UTC); engine_created_at and
    engine_updated_at are the engine's, as it gave them."""
    if not show_secrets:
        record = redact.mask_record(record)
    root = record.get("engine_execution_id")
    return {
        "id": record["id"],
        "status": record["status"],
        "workflow_name": record["workflow_name"],
        "namespace": record.get("namespace") or "",
        "workbook": record.get("workbook"),
        "engine_execution_id": root,
        "engine_state": record.get("engine_state"),
        "input": record.get("input") or {},
        "output": record.get("output"),
        "error": record.get("error"),
        "tasks": [task_view(t, root) for t in record.get("tasks") or []],
        "finished_by": record.get("finished_by"),
        "created_at": iso(record.get("created_at")),
        "submitted_at": iso(record.get("submitted_at")),
        "updated_at": iso(record.get("updated_at")),
        "ended_at": iso(record.get("ended_at")),
        "labels": record.get("labels") or {},
        "started_by": record.get("started_by"),
        "engine_created_at": record.get("engine_created_at"),
        "engine_updated_at": record.get("engine_updated_at"),
        "stuck": stuckview.view(record),
    }


def dumps(value):
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False)


def progress_line(record):
    tasks = record.get("tasks") or []
    done = sum(1 for t in tasks if t.get("status") in st.TERMINAL)
    root = record.get("engine_execution_id")
    running = [taskview.display_label(t, root) for t in tasks if t.get("status") not in st.TERMINAL]
    line = "%s: %d/%d tasks done" % (record["status"], done, len(tasks))
    if running:
        line += " (running: %s)" % ", ".join(running[:5])
    return line


def execution_text(record, show_secrets=False):
    view = execution_view(record, show_secrets)
    seconds = duration_s(record) if record.get("ended_at") else None
    took = " (took %s)" % short_duration(seconds) if seconds is not None else ""
    engine = ""
    if record.get("engine_created_at"):
        engine = "%s .. %s (engine clock, one-second resolution)" % (
            record["engine_created_at"],
            record.get("engine_updated_at") or "-",
        )
    finished = " (finished by %s)" % view["finished_by"] if view["finished_by"] else ""
    lines = [
        "id:         %s" % view["id"],
        "workflow:   %s%s"
        % (
            view["workflow_name"],
            " (namespace %s)" % view["namespace"] if view["namespace"] else "",
        ),
        "status:     %s%s" % (view["status"], finished),
        "engine id:  %s (%s)" % (view["engine_execution_id"], view["engine_state"] or "-"),
        "created:    %s" % view["created_at"],
        "submitted:  %s" % (view["submitted_at"] or "-"),
        "ended:      %s%s" % (view["ended_at"] or "-", took),
        "input:      %s" % json.dumps(view["input"], ensure_ascii=False),
        "output:     %s"
        % (json.dumps(view["output"], ensure_ascii=False) if view["output"] is not None else "-"),
    ]
    if engine:
        lines.insert(7, "engine:     %s" % engine)
    if view["error"]:
        lines.append("error:      %s" % _indent(view["error"]))
    stuck = stuckview.explain(record)
    if stuck:
        lines.append("STUCK:      %s" % _indent("\n".join(stuck)))
    if view["tasks"]:
        width = max(len(t["label"] or "") for t in view["tasks"])
        lines.append("tasks:")
        for t in view["tasks"]:
            info = (
                "  %s" % one_line(t["state_info"], first_line=True, limit=100)
                if t["state_info"] and t["status"] == st.FAILED
                else ""
            )
            lines.append("  %-*s  %-9s%s" % (width, t["label"], t["status"], info))
    return "\n".join(lines)


def short_duration(seconds):
    """'850 ms', '4.2 s', '3 min 05 s': the bridge's clock has sub-second resolution."""
    if seconds < 0.001:
        return "under 1 ms"
    if seconds < 1:
        return "%d ms" % round(seconds * 1000)
    if seconds < 60:
        return "%.1f s" % seconds
    return "%d min %02d s" % divmod(int(seconds), 60)


def _indent(text):
    return str(text).replace("\n", "\n            ")


def table(rows, columns, width=None):
    """Rows of dicts as an aligned text table with a header. With `width`
    (the terminal's), the widest columns are cut to fit; id columns last."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    if width:
        widths = _fit(columns, widths, width)
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(_cut(v, w).ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value):
    return one_line(value) if value is not None else "-"


def _cut(text, width):
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def _fit(columns, widths, total):
    """Narrow the widest columns until the table fits in `total` characters;
    columns named *id keep 13 characters (enough for a unique prefix)."""
    widths = list(widths)
    floors = [13 if c == "id" or c.endswith("_id") else min(len(c), 8) for c in columns]
    gaps = 2 * (len(columns) - 1)
    for ids_too in (False, True):
        while sum(widths) + gaps > total:
            cuttable = [
                i
                for i, c in enumerate(columns)
                if widths[i] > floors[i] and (ids_too or not (c == "id" or c.endswith("_id")))
            ]
            if not cuttable:
                break
            i = max(cuttable, key=lambda j: widths[j])
            widths[i] = max(floors[i], widths[i] - max(1, sum(widths) + gaps - total))
    return widths


def terminal_width(stream=None):
    """The terminal's width when `stream` (stdout) is one; None for a pipe
    or a file (scripts get whole values)."""
    stream = stream or sys.stdout
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size((120, 24)).columns


# -- -f / -c ---------------------------------------------------------------------


def add_format_options(parser, columns):
    """-f/--format, -c/--column and the --json alias on one command."""
    group = parser.add_argument_group("output formatters")
    group.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="table",
        help="output format (default table)",
    )
    group.add_argument(
        "-c",
        "--column",
        action="append",
        default=[],
        metavar="COLUMN",
        help="show only this column (repeatable): %s" % ", ".join(columns),
    )
    group.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as -f json"
    )
    parser.set_defaults(format="table")


def pick(wanted, available, aliases=None):
    """The fields named by -c, in the order asked; InputError for an unknown one.
    `aliases`: {table column: JSON field}."""
    aliases = dict(aliases or {})
    by_name = {name.lower(): name for name in available}
    by_name.update({a.lower(): f for a, f in aliases.items() if f in available})
    chosen = []
    for name in wanted:
        field = by_name.get(name.strip().lower().replace("-", "_").replace(" ", "_"))
        if field is None:
            raise errors.InputError(
                "unknown column %r (one of: %s)" % (name, ", ".join(sorted(available)))
            )
        chosen.append(field)
    return chosen


def emit_rows(args, rows, fields, text, aliases=None, empty="nothing to show"):
    """Print a list: `rows` are JSON-shaped dicts with `fields`; `text(rows)`
    is the table when no column is picked."""
    chosen = pick(args.column, fields, aliases) if args.column else None
    if chosen:
        rows = [{f: r.get(f) for f in chosen} for r in rows]
    if args.format == "json":
        print(dumps(rows))
    elif args.format == "yaml":
        print(yaml_text(rows), end="")
    elif args.format == "value":
        for row in rows:
            print(" ".join(_cell(row.get(f)) for f in (chosen or fields)))
    elif chosen:
        print(table(rows, chosen, terminal_width()) if rows else empty)
    else:
        print(text(rows) if rows else empty)


def emit_one(args, view, text):
    """Print one object: `view` is its JSON shape; `text()` the table form."""
    chosen = pick(args.column, list(view)) if args.column else None
    shown = {f: view[f] for f in chosen} if chosen else view
    if args.format == "json":
        print(dumps(shown))
    elif args.format == "yaml":
        print(yaml_text(shown), end="")
    elif args.format == "value":
        for value in shown.values():
            print(value if isinstance(value, str) else _plain(value))
    elif chosen:
        rows = [{"field": k, "value": _plain(v)} for k, v in shown.items()]
        print(table(rows, ["field", "value"], terminal_width()))
    else:
        print(text())


def _plain(value):
    return "-" if value is None else value if isinstance(value, str) else json.dumps(value)


def yaml_text(value):
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)


def add_debug_everywhere(parser):
    """`--debug` on the command line of every (sub)command, not only before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if not any("--debug" in a.option_strings for a in sub._actions):
                    sub.add_argument(
                        "--debug",
                        action="store_true",
                        default=argparse.SUPPRESS,
                        help="log at DEBUG on stderr and show tracebacks of errors",
                    )
                add_debug_everywhere(sub)
