"""How records are shown: JSON for scripts, aligned text for people."""

import datetime
import json

from st2bridge import status as st
from st2bridge.tracker import stuckview


def iso(ts):
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(
        timespec="milliseconds"
    )


def execution_view(record):
    """The stable JSON shape of an execution (documented in the README)."""
    return {
        "id": record["id"],
        "status": record["status"],
        "workflow_name": record["workflow_name"],
        "namespace": record.get("namespace") or "",
        "workbook": record.get("workbook"),
        "engine_execution_id": record["engine_execution_id"],
        "engine_state": record.get("engine_state"),
        "input": record.get("input") or {},
        "output": record.get("output"),
        "error": record.get("error"),
        "tasks": [
            {
                "name": t.get("name"),
                "status": t.get("status"),
                "state": t.get("state"),
                "id": t.get("id"),
                "state_info": t.get("state_info"),
                "started_at": t.get("started_at"),
                "finished_at": t.get("finished_at"),
            }
            for t in record.get("tasks") or []
        ],
        "finished_by": record.get("finished_by"),
        "created_at": iso(record.get("created_at")),
        "updated_at": iso(record.get("updated_at")),
        "ended_at": iso(record.get("ended_at")),
        "stuck": stuckview.view(record),
    }


def dumps(value):
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False)


def progress_line(record):
    tasks = record.get("tasks") or []
    done = sum(1 for t in tasks if t.get("status") in st.TERMINAL)
    running = [t["name"] for t in tasks if t.get("status") not in st.TERMINAL]
    line = "%s: %d/%d tasks done" % (record["status"], done, len(tasks))
    if running:
        line += " (running: %s)" % ", ".join(running[:5])
    return line


def execution_text(record):
    view = execution_view(record)
    took = ""
    if record.get("ended_at") and record.get("created_at"):
        # The engine's end time has one-second resolution.
        seconds = record["ended_at"] - record["created_at"]
        took = " (took %.0f s)" % seconds if seconds >= 1 else " (took under 1 s)"
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
        "ended:      %s%s" % (view["ended_at"] or "-", took),
        "input:      %s" % json.dumps(view["input"], ensure_ascii=False),
        "output:     %s"
        % (json.dumps(view["output"], ensure_ascii=False) if view["output"] is not None else "-"),
    ]
    if view["error"]:
        lines.append("error:      %s" % _indent(view["error"]))
    stuck = stuckview.explain(record)
    if stuck:
        lines.append("STUCK:      %s" % _indent("\n".join(stuck)))
    if view["tasks"]:
        width = max(len(t["name"] or "") for t in view["tasks"])
        lines.append("tasks:")
        for t in view["tasks"]:
            info = (
                "  %s" % t["state_info"].splitlines()[0][:100]
                if t["state_info"] and t["status"] == st.FAILED
                else ""
            )
            lines.append("  %-*s  %-9s%s" % (width, t["name"], t["status"], info))
    return "\n".join(lines)


def _indent(text):
    return str(text).replace("\n", "\n            ")


def table(rows, columns):
    """Rows of dicts as an aligned text table with a header."""
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)
