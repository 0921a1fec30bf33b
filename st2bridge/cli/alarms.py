"""`st2bridge rule list|validate|test` and `st2bridge event list|get`.

`rule test RULE --event FILE` runs the rules over an event as st2bridge-api
would (which match each alert, why the others do not, and the exact input,
de-duplication and concurrency keys they would use) and changes nothing.
`event get ID` answers "why did my alarm do nothing".
"""

import json
import sys
import time

import yaml

from st2bridge import app, errors
from st2bridge.alarms import match, sources, views
from st2bridge.alarms.rules import RuleSet, load_file
from st2bridge.cli import output, timespec
from st2bridge.text import one_line

EVENT_COLUMNS = ["id", "source", "received_at", "outcome", "alerts", "actions", "executions"]


def add_parser(commands):
    rule = commands.add_parser("rule", help="alarm rules ([api] rules_dir)")
    sub = rule.add_subparsers(dest="rule_command", metavar="COMMAND", required=True)
    ls = sub.add_parser("list", help="the rules st2bridge-api loads, and mistakes in their files")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_rule_list)
    check = sub.add_parser("validate", help="check rule files (exit 2 on a mistake)")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=cmd_rule_validate)
    test = sub.add_parser("test", help="which rules match an event, and what they would start")
    test.add_argument("rule", nargs="?", metavar="RULE", help="one rule (default: every rule)")
    test.add_argument(
        "--event", required=True, metavar="FILE", help="the event body (JSON or YAML)"
    )
    test.add_argument(
        "--source",
        help="alertmanager, aodh or webhook/NAME (default: the rule's, or guessed from the body)",
    )
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_rule_test)

    event = commands.add_parser("event", help="events posted to st2bridge-api and what they did")
    esub = event.add_subparsers(dest="event_command", metavar="COMMAND", required=True)
    el = esub.add_parser("list", help="events, newest first")
    el.add_argument("--source", help="alertmanager, aodh or webhook")
    el.add_argument("--outcome", help="started, joined, queued, dropped, error, no_match, ...")
    el.add_argument("--since", help="ISO time or 30m, 1h, 2d")
    el.add_argument("--limit", type=int, default=50, metavar="N")
    el.add_argument("--json", action="store_true")
    el.set_defaults(handler=cmd_event_list)
    eg = esub.add_parser("get", help="what became of each alert of an event, and why")
    eg.add_argument("id", metavar="ID")
    eg.add_argument("--json", action="store_true")
    eg.set_defaults(handler=cmd_event_get)


# -- rules ----------------------------------------------------------------------------


def _ruleset(conf):
    return RuleSet.load(conf.api.rules_dir)


def rule_row(rule):
    c = rule.concurrency
    return {
        "name": rule.name,
        "source": rule.source + ("/" + rule.webhook if rule.webhook else ""),
        "workflow": rule.workflow + (" (ns %s)" % rule.namespace if rule.namespace else ""),
        "enabled": rule.enabled,
        "dedup_key": rule.dedup_key.source if rule.dedup_key else "(the source's)",
        "cooldown": rule.cooldown,
        "concurrency": None
        if c is None
        else "%s limit %d%s, %s"
        % (
            c.key.source if hasattr(c.key, "source") else repr(c.key or "(rule)"),
            c.limit,
            " total %d" % c.total if c.total else "",
            c.overflow,
        ),
        "on_resolved": rule.on_resolved
        if isinstance(rule.on_resolved, str)
        else "start " + rule.on_resolved["workflow"],
        "file": rule.where,
    }


def cmd_rule_list(args, conf):
    ruleset = _ruleset(conf)
    rows = [rule_row(r) for r in ruleset.rules]
    if args.json:
        print(output.dumps({"rules": rows, "errors": ruleset.errors}))
    elif rows:
        print(
            output.table(rows, ["name", "source", "workflow", "concurrency", "on_resolved", "file"])
        )
    else:
        print("no rules in %s" % conf.api.rules_dir)
    for line in ruleset.errors:
        print("st2bridge: error: %s" % line, file=sys.stderr)
    return errors.EXIT_USAGE if ruleset.errors else errors.EXIT_OK


def cmd_rule_validate(args, conf):
    problems, count = [], 0
    for path in args.files:
        rules, found = load_file(path)
        problems += found
        count += len(rules)
        if not found:
            print("%s: %d rules, valid" % (path, len(rules)))
    for line in problems:
        print("st2bridge: error: %s" % line, file=sys.stderr)
    return errors.EXIT_USAGE if problems else errors.EXIT_OK


def _read_event(path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise errors.InputError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.InputError("%s is not JSON or YAML: %s" % (path, one_line(exc))) from None
    if not isinstance(value, dict):
        raise errors.InputError("%s must hold a JSON object (the event body)" % path)
    return value


def guess_source(payload):
    if "alerts" in payload and "version" in payload:
        return "alertmanager"
    if "alarm_id" in payload:
        return "aodh"
    return "webhook"


def try_rules(ruleset, payload, source=None, only=None, now=None):
    """What st2bridge-api would do with this body, changing nothing: per
    alert, per rule, matched or why not, and the input and keys."""
    rules = ruleset.rules
    if only is not None:
        rule = ruleset.get(only)
        if rule is None:
            raise errors.NotFound("no rule %s in %s" % (only, ruleset.rules_dir))
        rules = [rule]
        source = source or rule.source + ("/" + rule.webhook if rule.webhook else "")
    source = source or guess_source(payload)
    kind, _, name = source.partition("/")
    event = {
        "id": "(test)",
        "source": kind,
        "name": name or None,
        "received_at": now or time.time(),
    }
    out = []
    for index, alert in enumerate(sources.alerts(kind, payload, event)):
        row = {"index": index, "status": alert.status, "labels": alert.labels, "rules": []}
        for rule in rules:
            entry = {"rule": rule.name}
            if not rule.listens_to(kind, name or None):
                entry.update(match=False, reason="listens to %s, not %s" % (rule.source, source))
            else:
                ok, why = match.matches(rule.criteria, alert.context)
                entry.update(match=ok, reason=why)
                if ok:
                    entry.update(_would(rule, alert))
            row["rules"].append(entry)
        out.append(row)
    return source, out


def _would(rule, alert):
    ctx = alert.context
    try:
        dedup = match.render_text(rule.dedup_key, ctx) if rule.dedup_key else alert.default_dedup
        if alert.status == sources.RESOLVED:
            resolved = rule.on_resolved
            if isinstance(resolved, dict):
                return {
                    "dedup_key": dedup,
                    "would": "start %s (resolved)" % resolved["workflow"],
                    "input": match.render_value(resolved["input"], ctx),
                }
            return {"dedup_key": dedup, "would": "resolved: %s" % resolved}
        if alert.status != sources.FIRING:
            return {"would": "nothing (state %s)" % alert.status}
        key = None
        if rule.concurrency is not None:
            key = match.render_text(rule.concurrency.key, ctx) if rule.concurrency.key else ""
        return {
            "dedup_key": dedup,
            "concurrency_key": key,
            "would": "start %s" % rule.workflow,
            "input": match.render_value(rule.input, ctx),
        }
    except match.TemplateError as exc:
        return {"would": "error", "error": str(exc)}


def cmd_rule_test(args, conf):
    ruleset = _ruleset(conf)
    payload = _read_event(args.event)
    source, rows = try_rules(ruleset, payload, args.source, args.rule)
    if args.json:
        print(output.dumps({"source": source, "alerts": rows, "rule_errors": ruleset.errors}))
        return errors.EXIT_OK
    print("event from %s: %d alerts; nothing is started or recorded" % (source, len(rows)))
    for row in rows:
        labels = ", ".join("%s=%s" % kv for kv in sorted(row["labels"].items()))
        print("alert %d %s%s" % (row["index"], row["status"], " {%s}" % labels if labels else ""))
        for entry in row["rules"]:
            if not entry["match"]:
                print("  rule %s: no match: %s" % (entry["rule"], entry["reason"]))
                continue
            print("  rule %s: matches: would %s" % (entry["rule"], entry["would"]))
            for key in ("dedup_key", "concurrency_key", "error"):
                if entry.get(key) is not None:
                    print("    %s: %s" % (key, entry[key]))
            if "input" in entry:
                print(
                    "    input: %s" % json.dumps(entry["input"], ensure_ascii=False, sort_keys=True)
                )
    return errors.EXIT_OK


# -- events -----------------------------------------------------------------------------


def cmd_event_list(args, conf):
    if args.limit < 1:
        raise errors.InputError("--limit must be at least 1")
    since = timespec.parse_since(args.since, time.time()) if args.since else None
    with app.build_store(conf, create=False) as store:
        events = store.list_events(
            source=args.source,
            outcome=args.outcome.split(",") if args.outcome else None,
            since=since,
            limit=args.limit,
        )
    rows = [views.row(e) for e in events]
    if args.json:
        print(output.dumps(rows))
    elif rows:
        print(
            output.table(
                [dict(r, executions=" ".join(r["executions"])) for r in rows], EVENT_COLUMNS
            )
        )
    else:
        print("no events")
    return errors.EXIT_OK


def cmd_event_get(args, conf):
    with app.build_store(conf, create=False) as store:
        event = store.get_event(args.id)
        view = views.event_view(event, store, with_payload=args.json)
    print(output.dumps(view) if args.json else views.explain(view))
    return errors.EXIT_OK
