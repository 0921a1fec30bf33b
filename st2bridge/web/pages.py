"""Server-rendered HTML of the web view. Every value goes through html.escape
(`e`); JSON shown in a page is escaped the same way, so a workflow output
holding markup or script shows as text. The page script and style are static
files of this module, served from /static/ (the CSP allows nothing inline)."""

import html
import json
import time
import urllib.parse
from importlib import resources

from st2bridge import status as st
from st2bridge.tracker import stuckview
from st2bridge.web import graph as graphs


def e(value):
    """html.escape of any value (None is empty)."""
    return html.escape("" if value is None else str(value))


STATUS_CHOICES = ("",) + st.ALL

# The page style and script are package data files (st2bridge/web/static/).
CSS = resources.files(__package__).joinpath("static/style.css").read_text("utf-8")
JS = resources.files(__package__).joinpath("static/app.js").read_text("utf-8")


def when(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else ""


def duration(seconds, running=False):
    """Bridge clock, sub-second: under one second in ms; nothing when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        text = "%d ms" % round(seconds * 1000) if seconds >= 0.001 else "under 1 ms"
    else:
        text = "%.1f s" % seconds if seconds < 60 else "%d min %d s" % divmod(int(seconds), 60)
    return text + ("+" if running else "")


def badge(status, element_id=None):
    return '<span class="badge st-%s"%s>%s</span>' % (
        e(status or ""),
        ' id="%s"' % e(element_id) if element_id else "",
        e(status or ""),
    )


USER_MARK = "<!--user-->"  # where app.py puts who is logged in (per request)


def page(title, body, *, live=None, kind="", terminal=False, base="", stream=None):
    """`live`: the JSON the script re-reads; `stream`: the Server-Sent Events
    that tell it when (without one it polls)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>%s</title><link rel="stylesheet" href="%sstatic/style.css"></head>'
        '<body data-page="%s" data-live="%s" data-stream="%s" data-terminal="%s">'
        '<header><a href="%sexecutions">st2bridge \u00b7 executions</a>%s</header>'
        '<main>%s</main><script src="%sstatic/app.js"></script></body></html>'
        % (
            e(title),
            e(base),
            e(kind),
            e(live or ""),
            e(stream or "" if live else ""),
            "true" if terminal else "false",
            e(base),
            USER_MARK,
            body,
            e(base),
        )
    )


def executions_page(rows, status="", workflow="", live_url="", stream_url=""):
    options = "".join(
        '<option value="%s"%s>%s</option>'
        % (e(s), " selected" if s == status else "", e(s or "any status"))
        for s in STATUS_CHOICES
    )
    body = [
        '<h1>Executions <small class="muted">'
        '(<span id="count">%d</span>, newest first)</small></h1>' % len(rows),
        '<form class="filters" method="get" action="executions">'
        '<select name="status">%s</select>'
        '<input name="workflow" placeholder="workflow" value="%s">'
        '<button type="submit">Filter</button></form>' % (options, e(workflow)),
        "<table><thead><tr><th>id</th><th>workflow</th><th>status</th><th>started (UTC)</th>"
        '<th>duration</th><th>error</th></tr></thead><tbody id="rows">',
    ]
    for r in rows:
        body.append(
            '<tr data-id="%s"><td class="id"><a href="executions/%s">%s</a></td><td>%s</td>'
            '<td>%s</td><td>%s</td><td>%s</td><td class="error">%s</td></tr>'
            % (
                e(r["id"]),
                e(urllib.parse.quote(r["id"], safe="")),
                e(r["id"]),
                e(r["workflow_name"] or ""),
                badge(r["status"]) + stuck_badge(r.get("stuck")),
                e(when(r["created_at"])),
                e(duration(r["duration_s"], not r["terminal"])),
                e(r["error"] or ""),
            )
        )
    body.append("</tbody></table>")
    return page("Executions", "".join(body), live=live_url, kind="list", stream=stream_url)


def stuck_badge(stuck):
    """A stuck execution's mark beside its status: the signature, with the
    reason and the fixing command on hover."""
    if not stuck:
        return ""
    return ' <span class="badge stuck" title="%s">stuck: %s</span>' % (
        e("%s\nfix: %s" % (stuck.get("reason") or "", stuck.get("command") or "")),
        e(stuck.get("signature") or ""),
    )


def stuck_section(record):
    """The explanation and the command, first in the side column."""
    lines = stuckview.explain(record)
    if not lines:
        return ""
    shown = stuckview.view(record)
    return (
        '<section class="box stuck" id="stuck"><h3>Stuck: %s</h3><pre>%s</pre>'
        "<p>Fix: <code>%s</code></p></section>"
        % (e(shown["signature"]), e("\n".join(lines[:-1])), e(shown["command"]))
    )


def _json(value):
    return e(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def _graph_block(tree, detail, depth=0):
    out = []
    g = tree["graph"]
    by_name = {t["name"]: t for t in tree["tasks"]}
    if g is None:
        out.append(
            '<p class="muted">No graph for workflow %s (definition not available); '
            "its tasks:</p><ul>%s</ul>"
            % (
                e(tree["workflow"] or "?"),
                "".join("<li>%s: %s</li>" % (e(t["name"]), e(t["state"])) for t in tree["tasks"]),
            )
        )
    else:
        failed = detail.failed_names(tree["execution_id"])
        svg = graphs.svg(
            g, by_name, failed=failed, prefix="g%d-%s" % (depth, (tree["execution_id"] or "x")[:8])
        )
        out.append(
            svg.replace("<svg ", '<svg data-execution="%s" ' % e(tree["execution_id"] or ""), 1)
        )
    for task_name, subs in tree["subs"].items():
        for sub in subs:
            state = {t["state"] for t in sub["tasks"]}
            out.append(
                '<details class="sub" data-task="%s"%s><summary>sub-workflow %s '
                "(task %s%s)</summary>%s</details>"
                % (
                    e(task_name),
                    " open" if "ERROR" in state else "",
                    e(sub["workflow"] or "?"),
                    e(task_name),
                    e(", item " + sub["instance"] if sub.get("instance") else ""),
                    "".join(_graph_block(sub, detail, depth + 1)),
                )
            )
    return out


def execution_page(detail, live_url="", stream_url="", actions_box=""):
    r = detail.record
    tree = detail.tree()
    terminal = st.is_terminal(r.get("status"))
    from st2bridge.web.data import duration as dur

    body = [
        "<h1>%s %s%s</h1>"
        % (
            e(r.get("workflow_name") or ""),
            badge(r.get("status"), "status"),
            stuck_badge(stuckview.view(r)),
        ),
        '<p class="mono">%s \u00b7 engine %s \u00b7 started %s UTC \u00b7 '
        '<span id="duration">%s</span></p>'
        % (
            e(r["id"]),
            e(r.get("engine_execution_id") or ""),
            e(when(r.get("created_at"))),
            e(duration(dur(r, detail.now), not terminal)),
        ),
    ]
    if detail.engine_error:
        body.append(
            '<p class="error">Engine not reachable (%s): showing the recorded tasks.</p>'
            % e(detail.engine_error)
        )
    body.append(
        '<div class="layout"><div class="graphs"><p class="legend muted">'
        "<span>\u2192 green: on-success</span><span>red dashed: on-error</span>"
        "<span>grey: on-complete</span><span>\u25b8 sub-workflow</span></p>"
    )
    body.extend(_graph_block(tree, detail))
    body.append("</div><aside>")
    body.append(actions_box)  # st2bridge.web.actions.controls: empty unless logged in
    body.append(stuck_section(r))
    if detail.failure:
        f = detail.failure
        items = "".join(
            '<li><b>%s</b>%s<pre class="error">%s</pre></li>'
            % (
                e(t.get("label") or t["name"]),
                e(" in " + " \u203a ".join(t["path"])) if t["path"] else "",
                e(t["error"] or ""),
            )
            for t in f["tasks"]
        )
        body.append(
            '<section class="box" id="failure"><h3>Failure</h3>%s%s</section>'
            % (
                "<ul>%s</ul>" % items if items else "",
                '<details><summary>engine message</summary><pre class="error">%s</pre></details>'
                % e(f["error"])
                if f["error"]
                else "",
            )
        )
    body.append(
        '<section class="box" id="state"><h3>State</h3><pre>engine state: %s\n'
        "finished by: %s\nupdated: %s UTC</pre>%s</section>"
        % (
            e(r.get("engine_state") or ""),
            e(r.get("finished_by") or ""),
            e(when(r.get("updated_at"))),
            '<pre class="error">%s</pre>' % e(r["error"])
            if r.get("error") and not detail.failure
            else "",
        )
    )
    body.append(
        '<section class="box" id="input"><h3>Input</h3><pre>%s</pre></section>'
        % _json(r.get("input"))
    )
    body.append(
        '<section class="box" id="output"><h3>Output</h3><pre>%s</pre></section>'
        % _json(r.get("output"))
    )
    rows = "".join(
        '<tr><td>%s</td><td>%s</td><td>%s</td><td class="error">%s</td></tr>'
        % (
            e(t["name"] or ""),
            e(t["state"] or ""),
            e("" if t["items"] is None else t["items"]),
            e((t["state_info"] or "") if t["state"] == "ERROR" else ""),
        )
        for t in tree["tasks"]
    )
    body.append(
        '<section class="box" id="tasks"><h3>Tasks</h3><table><tr><th>task</th>'
        "<th>state</th><th>items</th><th>error</th></tr>%s</table></section>" % rows
    )
    body.append("</aside></div>")
    return page(
        "%s %s" % (r.get("workflow_name") or "", r["id"]),
        "".join(body),
        live=live_url,
        kind="execution",
        terminal=terminal,
        base="../",
        stream=stream_url,
    )


def message_page(title, text):
    return page(title, "<h1>%s</h1><p>%s</p>" % (e(title), e(text)))
