"""Server-rendered HTML of the web view. Every value goes through html.escape
(`e`); JSON shown in a page is escaped the same way, so a workflow output
holding markup or script shows as text. The page script and style are static
files of this module, served from /static/ (the CSP allows nothing inline)."""

import html
import json
import time
import urllib.parse

from st2bridge import status as st
from st2bridge.web import graph as graphs


def e(value):
    """html.escape of any value (None is empty)."""
    return html.escape("" if value is None else str(value))


STATUS_CHOICES = ("",) + st.ALL

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 18px}header a{color:#fff;text-decoration:none}
main{padding:14px 18px}table{border-collapse:collapse;background:#fff;width:100%}
th,td{text-align:left;padding:5px 9px;border-bottom:1px solid #e3e6ea;vertical-align:top}
.mono,td.id{font-family:ui-monospace,monospace;font-size:12px}
.badge{padding:1px 8px;border-radius:9px;color:#fff;background:#8a94a6;white-space:nowrap}
.st-succeeded{background:#2e8b57}.st-failed,.st-abandoned,.st-timeout{background:#c0392b}
.st-running,.st-resuming{background:#2f6fd6}.st-requested,.st-scheduled{background:#7b68ee}
.st-paused,.st-pausing,.st-canceling,.st-canceled{background:#d48a00}
form.filters{margin-bottom:10px}form.filters *{margin-right:6px}
.layout{display:flex;gap:16px;align-items:flex-start}.graphs{flex:1;overflow:auto}
aside{width:38%;min-width:300px}section.box{background:#fff;border:1px solid #e3e6ea;
border-radius:6px;padding:8px 12px;margin-bottom:12px}pre{white-space:pre-wrap;
word-break:break-word;margin:4px 0;font-size:12px}.error{color:#a3231a}
svg.graph{background:#fff;border:1px solid #e3e6ea;border-radius:6px}
.node rect{fill:#eef0f3;stroke:#8a94a6;stroke-width:1.5}.node text{text-anchor:middle;font-size:12px}
.node text.name{font-weight:600}.node.state-SUCCESS rect{fill:#d7f0df;stroke:#2e8b57}
.node.state-ERROR rect{fill:#f8d7d4;stroke:#c0392b;stroke-width:3}
.node.state-RUNNING rect,.node.state-RUNNING_DELAYED rect{fill:#d9e6fb;stroke:#2f6fd6}
.node.state-WAITING rect,.node.state-DELAYED rect,.node.state-IDLE rect{fill:#ece8fb;stroke:#7b68ee}
.node.state-PAUSED rect,.node.state-CANCELLED rect{fill:#fbecd0;stroke:#d48a00}
.node.state-SKIPPED rect{fill:#f2f2f2;stroke:#bbb}.node.state-NONE rect{stroke-dasharray:4 3}
.node.subworkflow rect{stroke-width:2.5}.edge{fill:none;stroke-width:1.5}
.edge.on-success{stroke:#2e8b57}.edge.on-error{stroke:#c0392b;stroke-dasharray:6 3}
.edge.on-complete,.edge.requires{stroke:#6b7385}.arrow.on-success{fill:#2e8b57}
.arrow.on-error{fill:#c0392b}.arrow.on-complete,.arrow.requires{fill:#6b7385}
details.sub{margin:8px 0 8px 14px}details.sub summary{cursor:pointer;font-weight:600}
.legend span{margin-right:12px}.muted{color:#6b7385}
"""

JS = """
(function () {
  var root = document.body, url = root.getAttribute('data-live');
  if (!url) { return; }
  var kind = root.getAttribute('data-page');
  function text(el, value) { el.textContent = value == null ? '' : String(value); }
  function cell(tr, value, cls) { var td = document.createElement('td'); text(td, value);
    if (cls) { td.className = cls; } tr.appendChild(td); return td; }
  function badge(status) { var s = document.createElement('span');
    s.className = 'badge st-' + status; text(s, status); return s; }
  function fmt(t) { return t ? new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19) : ''; }
  function dur(s) { if (s == null) { return ''; } if (s < 60) { return s.toFixed(1) + ' s'; }
    return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s'; }
  function list(data) {
    var body = document.getElementById('rows'); body.textContent = '';
    data.executions.forEach(function (r) {
      var tr = document.createElement('tr'); tr.setAttribute('data-id', r.id);
      var a = document.createElement('a'); a.href = 'executions/' + encodeURIComponent(r.id);
      text(a, r.id); cell(tr, '', 'id').appendChild(a); cell(tr, r.workflow_name);
      cell(tr, '').appendChild(badge(r.status)); cell(tr, fmt(r.created_at));
      cell(tr, dur(r.duration_s) + (r.terminal ? '' : '+')); cell(tr, r.error, 'error');
      body.appendChild(tr); });
    text(document.getElementById('count'), data.executions.length);
  }
  function detail(data) {
    var ex = data.execution, b = document.getElementById('status');
    b.className = 'badge st-' + ex.status; text(b, ex.status);
    text(document.getElementById('duration'), dur(ex.duration_s) + (ex.terminal ? '' : '+'));
    Object.keys(data.tasks).forEach(function (wf) {
      var svg = document.querySelector('svg[data-execution="' + wf + '"]'); if (!svg) { return; }
      var tasks = data.tasks[wf];
      Object.keys(tasks).forEach(function (name) {
        svg.querySelectorAll('g.node').forEach(function (g) {
          if (g.getAttribute('data-task') !== name) { return; }
          var t = tasks[name];
          g.setAttribute('class', g.getAttribute('class').replace(/state-\\S+/, 'state-' + t.state));
          var label = g.querySelector('text.state');
          if (label) { text(label, t.state + (t.items != null ? ' \\u00b7 ' + t.items + ' items' : '')); }
        }); }); });
    if (ex.terminal && root.getAttribute('data-terminal') !== 'true') { location.reload(); return true; }
  }
  function poll() {
    fetch(url, {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
      return r.ok ? r.json() : null; }).then(function (data) {
      var done = data && (kind === 'list' ? list(data) : detail(data));
      if (!done) { setTimeout(poll, 1500); }
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1500);
})();
"""


def when(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else ""


def duration(seconds, running=False):
    if seconds is None:
        return ""
    text = "%.1f s" % seconds if seconds < 60 else "%d min %d s" % (seconds // 60, seconds % 60)
    return text + ("+" if running else "")


def badge(status, element_id=None):
    return '<span class="badge st-%s"%s>%s</span>' % (
        e(status or ""),
        ' id="%s"' % e(element_id) if element_id else "",
        e(status or ""),
    )


def page(title, body, *, live=None, kind="", terminal=False, base=""):
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>%s</title><link rel="stylesheet" href="%sstatic/style.css"></head>'
        '<body data-page="%s" data-live="%s" data-terminal="%s">'
        '<header><a href="%sexecutions">st2bridge \u00b7 executions</a></header>'
        '<main>%s</main><script src="%sstatic/app.js"></script></body></html>'
        % (
            e(title),
            e(base),
            e(kind),
            e(live or ""),
            "true" if terminal else "false",
            e(base),
            body,
            e(base),
        )
    )


def executions_page(rows, status="", workflow="", live_url=""):
    options = "".join(
        '<option value="%s"%s>%s</option>'
        % (e(s), " selected" if s == status else "", e(s or "any status"))
        for s in STATUS_CHOICES
    )
    body = [
        '<h1>Executions <small class="muted">(<span id="count">%d</span>, newest first)</small></h1>'
        % len(rows),
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
                badge(r["status"]),
                e(when(r["created_at"])),
                e(duration(r["duration_s"], not r["terminal"])),
                e(r["error"] or ""),
            )
        )
    body.append("</tbody></table>")
    return page("Executions", "".join(body), live=live_url, kind="list")


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
                "(task %s)</summary>%s</details>"
                % (
                    e(task_name),
                    " open" if "ERROR" in state else "",
                    e(sub["workflow"] or "?"),
                    e(task_name),
                    "".join(_graph_block(sub, detail, depth + 1)),
                )
            )
    return out


def execution_page(detail, live_url=""):
    r = detail.record
    tree = detail.tree()
    terminal = st.is_terminal(r.get("status"))
    from st2bridge.web.data import duration as dur

    body = [
        "<h1>%s %s</h1>" % (e(r.get("workflow_name") or ""), badge(r.get("status"), "status")),
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
    if detail.failure:
        f = detail.failure
        items = "".join(
            '<li><b>%s</b>%s<pre class="error">%s</pre></li>'
            % (
                e(t["name"]),
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
    )


def message_page(title, text):
    return page(title, "<h1>%s</h1><p>%s</p>" % (e(title), e(text)))
