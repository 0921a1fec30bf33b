"""The web view's events page: what monitoring systems posted to
st2bridge-api, what became of each, linked to the executions they started
or joined (read from the store only)."""

import urllib.parse

from st2bridge.alarms import views
from st2bridge.web.pages import badge, e, page, when


def rows(store, limit=200):
    """The newest events, one row each, with every alert's actions."""
    out = []
    for event in store.list_events(limit=limit):
        view = views.event_view(event)
        out.append(
            {
                "id": event["id"],
                "source": view["source"] + ("/" + view["name"] if view.get("name") else ""),
                "received_at": event["received_at"],
                "outcome": view["outcome"],
                "alerts": [
                    {
                        "status": a.get("status"),
                        "instance": (a.get("labels") or {}).get("instance")
                        or (a.get("labels") or {}).get("alertname")
                        or "",
                        "actions": [
                            (x["rule"], x["outcome"], x.get("execution_id"), x.get("reason"))
                            for x in a["actions"]
                        ],
                        "reason": a.get("reason") or a.get("error"),
                    }
                    for a in view["alerts"]
                ],
            }
        )
    return out


def events_page(rows):
    body = [
        '<h1>Events <small class="muted">(%d, newest first)</small></h1>' % len(rows),
        "<table><thead><tr><th>received (UTC)</th><th>source</th><th>outcome</th>"
        "<th>alerts: rule, outcome, execution</th></tr></thead><tbody>",
    ]
    for r in rows:
        lines = []
        for alert in r["alerts"]:
            acts = []
            for rule, outcome, execution_id, reason in alert["actions"]:
                link = (
                    ' <a href="executions/%s">%s</a>'
                    % (e(urllib.parse.quote(execution_id, safe="")), e(execution_id[:8]))
                    if execution_id
                    else ""
                )
                acts.append(
                    '<span title="%s">%s %s</span>%s'
                    % (e(reason or ""), e(rule), badge(outcome), link)
                )
            what = "; ".join(acts) or '<span class="muted">%s</span>' % e(alert["reason"] or "")
            lines.append("%s %s: %s" % (e(alert["status"] or ""), e(alert["instance"]), what))
        body.append(
            '<tr data-id="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>'
            % (
                e(r["id"]),
                e(when(r["received_at"])),
                e(r["source"]),
                badge(r["outcome"]),
                "<br>".join(lines),
            )
        )
    body.append("</tbody></table>")
    return page("Events", "".join(body), kind="events")
