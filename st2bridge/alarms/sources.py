"""From a posted body to alerts: what each source sends, checked, and the
context rules see (criteria paths and template names).

alertmanager  Alertmanager's webhook payload, version 4: each alert of the
              group on its own, with the group's fields beside it:
              status, labels, annotations, startsAt, endsAt, generatorURL,
              fingerprint, receiver, groupKey, groupLabels, commonLabels,
              commonAnnotations, externalURL, truncatedAlerts.
              De-duplication key by default: the alert's fingerprint.
aodh          an Aodh alarm action: alarm_id, alarm_name, severity,
              previous, current, reason, reason_data; status is firing
              when current is "alarm", resolved when "ok" (else the state:
              "insufficient data" starts nothing). Default key: alarm_id.
webhook       any JSON object, as `body`, and `name` (from the URL); status
              is body.status when it is "firing" or "resolved", else
              firing. No de-duplication unless the rule has a dedup_key.
Every context also has `event`: {id, source, name, received_at}.
"""

import dataclasses
import hashlib
import json

from st2bridge import errors

SOURCES = ("alertmanager", "aodh", "webhook")
FIRING, RESOLVED = "firing", "resolved"
MAX_ALERTS = 10000


@dataclasses.dataclass
class Alert:
    status: str  # firing, resolved (or another state that starts nothing)
    context: dict  # what criteria and templates see
    default_dedup: str | None  # the source's de-duplication key
    fingerprint: str | None = None
    labels: dict = dataclasses.field(default_factory=dict)


def alerts(source, payload, event):
    """The alerts of one posted body; InputError (400) for a body the
    source never sends."""
    if source == "alertmanager":
        return _alertmanager(payload, event)
    if source == "aodh":
        return [_aodh(payload, event)]
    if source == "webhook":
        return [_webhook(payload, event)]
    raise errors.InputError("unknown event source %s (known: %s)" % (source, ", ".join(SOURCES)))


def _alertmanager(payload, event):
    version = payload.get("version")
    if version != "4":
        raise errors.InputError(
            'not an Alertmanager webhook payload of version "4" (version: %s)'
            % json.dumps(version)[:20]
        )
    items = payload.get("alerts")
    if not isinstance(items, list):
        raise errors.InputError('an Alertmanager payload needs "alerts": a list')
    if len(items) > MAX_ALERTS:
        raise errors.InputError("at most %d alerts in one payload" % MAX_ALERTS)
    group = {
        k: payload.get(k)
        for k in (
            "receiver",
            "groupKey",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "truncatedAlerts",
        )
    }
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise errors.InputError("alert %d is not an object" % index)
        labels = item.get("labels")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise errors.InputError("alert %d: labels must be an object of strings" % index)
        status = item.get("status")
        if status not in (FIRING, RESOLVED):
            raise errors.InputError("alert %d: status must be firing or resolved" % index)
        fingerprint = item.get("fingerprint")
        if fingerprint is None:
            fingerprint = label_fingerprint(labels)
        if not isinstance(fingerprint, str) or not fingerprint:
            raise errors.InputError("alert %d: fingerprint must be a string" % index)
        context = dict(group)
        context.update(
            status=status,
            labels=labels,
            annotations=item.get("annotations") or {},
            startsAt=item.get("startsAt"),
            endsAt=item.get("endsAt"),
            generatorURL=item.get("generatorURL"),
            fingerprint=fingerprint,
            event=event,
        )
        out.append(Alert(status, context, fingerprint, fingerprint, labels))
    return out


def label_fingerprint(labels):
    """A stable id of a label set (when a sender leaves fingerprint out)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _aodh(payload, event):
    alarm_id = payload.get("alarm_id")
    if not isinstance(alarm_id, str) or not alarm_id:
        raise errors.InputError('an Aodh alarm notification needs "alarm_id": a string')
    current = payload.get("current")
    if not isinstance(current, str):
        raise errors.InputError('an Aodh alarm notification needs "current": the alarm state')
    status = {"alarm": FIRING, "ok": RESOLVED}.get(current, current)
    context = dict(payload, status=status, event=event)
    labels = {"alarm_name": str(payload.get("alarm_name") or ""), "alarm_id": alarm_id}
    return Alert(status, context, alarm_id, alarm_id, labels)


def _webhook(payload, event):
    status = payload.get("status") if payload.get("status") in (FIRING, RESOLVED) else FIRING
    context = {"body": payload, "name": event.get("name"), "status": status, "event": event}
    return Alert(status, context, None)
