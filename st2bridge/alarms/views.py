"""How an event is shown (API, CLI, web view): what it was, which rules
matched each alert, which execution it started or joined, or why nothing
started. Queued and joined actions are looked up afresh, so a view says what
became of them since (a queued start that ran since shows its execution)."""

from st2bridge import errors, redact
from st2bridge.alarms.policy import idempotency_key
from st2bridge.cli import output

ACTION_FIELDS = (
    "rule",
    "outcome",
    "reason",
    "execution_id",
    "joined",
    "joined_event",
    "queue_id",
    "dedup_key",
    "concurrency_key",
    "warning",
)


def event_view(event, store=None, with_payload=False):
    alerts = []
    for alert in event.get("alerts") or []:
        row = {
            k: alert.get(k) for k in ("index", "status", "fingerprint", "labels", "reason", "error")
        }
        row["actions"] = [_action(a, store) for a in alert.get("actions") or []]
        if alert.get("unmatched"):
            row["unmatched"] = alert["unmatched"]
        alerts.append({k: v for k, v in row.items() if v is not None})
    view = {
        "id": event["id"],
        "source": event["source"],
        "name": event.get("name"),
        "received_at": output.iso(event.get("received_at")),
        "processed_at": output.iso(event.get("processed_at")),
        "status": event.get("status"),
        "outcome": event.get("outcome"),
        "by": event.get("by"),
        "alerts": alerts,
        "executions": sorted(
            {a["execution_id"] for al in alerts for a in al["actions"] if a.get("execution_id")}
        ),
    }
    if with_payload:
        view["payload"] = redact.mask_input(event.get("payload"))
    return view


def _action(action, store):
    out = {k: action.get(k) for k in ACTION_FIELDS if action.get(k) is not None}
    start = action.get("start")
    if start:
        out["workflow"] = start.get("workflow")
        out["input"] = redact.mask_input(start.get("input"))
    if store is None:
        return out
    try:
        if out.get("queue_id") and out["outcome"] in ("queued", "joined"):
            item = store.get_queue_item(out["queue_id"])
            if item["status"] == "started":
                out["execution_id"] = item["execution_id"]
                out["reason"] = (out.get("reason") or "") + "; the queued start ran since"
                if out["outcome"] == "queued":
                    out["outcome"] = "started"
            elif item["status"] == "canceled":
                out["reason"] = "queued, then canceled: %s" % item.get("reason")
                if out["outcome"] == "queued":
                    out["outcome"] = "canceled"
        if out.get("joined") and not out.get("execution_id"):
            found = store.execution_summaries(idempotency_keys=[idempotency_key(out["joined"])])
            if found:
                out["execution_id"] = found[0]["id"]
    except errors.NotFound:
        pass
    return out


def row(event):
    """One line of `event list`."""
    alerts = event.get("alerts") or []
    counts = {}
    for alert in alerts:
        for action in alert.get("actions") or []:
            counts[action["outcome"]] = counts.get(action["outcome"], 0) + 1
    executions = sorted(
        {
            a["execution_id"]
            for al in alerts
            for a in al.get("actions") or []
            if a.get("execution_id")
        }
    )
    return {
        "id": event["id"],
        "source": event["source"] + ("/" + event["name"] if event.get("name") else ""),
        "received_at": output.iso(event.get("received_at")),
        "outcome": event.get("outcome"),
        "alerts": len(alerts),
        "actions": ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items())),
        "executions": executions,
    }


def explain(view):
    """`event get` for a person: one block per alert."""
    lines = [
        "event %s from %s, received %s by %s: %s (%s)"
        % (
            view["id"],
            view["source"] + ("/" + view["name"] if view.get("name") else ""),
            view["received_at"],
            view.get("by") or "?",
            view["outcome"],
            view["status"],
        )
    ]
    for alert in view["alerts"]:
        if alert.get("error"):
            lines.append("  rejected: %s" % alert["error"])
            continue
        labels = ", ".join("%s=%s" % kv for kv in sorted((alert.get("labels") or {}).items()))
        lines.append(
            "  alert %s %s%s"
            % (alert["index"], alert.get("status"), " {%s}" % labels if labels else "")
        )
        for action in alert["actions"]:
            text = "    rule %s: %s" % (action["rule"], action["outcome"])
            if action.get("execution_id"):
                text += " execution %s" % action["execution_id"]
            if action.get("reason"):
                text += " (%s)" % action["reason"]
            lines.append(text)
        if not alert["actions"]:
            lines.append("    nothing started: %s" % alert.get("reason", "no rule matched"))
            for miss in alert.get("unmatched") or []:
                lines.append("      rule %s did not match: %s" % (miss["rule"], miss["reason"]))
    return "\n".join(lines)
