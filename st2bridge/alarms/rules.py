"""Alarm rules: YAML files in `[api] rules_dir` (*.yaml, *.yml), each holding
one rule, a list of rules, or several YAML documents. A rule:

    name: restart-on-target-down          # letters, digits, - _ . (label value)
    source: alertmanager                  # alertmanager | aodh | webhook | webhook/NAME
    criteria:                             # all must hold (st2bridge.alarms.match)
      labels.alertname: {equals: TargetDown}
    workflow: remediate_host              # a workflow the engine holds
    namespace: ""                         # its Mistral namespace (optional)
    input:                                # sandboxed Jinja2 templates
      host: "{{ labels.instance }}"
    dedup_key: "{{ fingerprint }}"        # default: the source's (sources.py)
    cooldown: 10m                         # after its execution ended (default 0)
    concurrency: {key: "{{ labels.instance }}", limit: 1, total: 10, overflow: queue}
    on_resolved: nothing                  # nothing | cancel | {workflow, namespace, input}
    enabled: true

Every mistake is reported as one line `FILE:LINE: rule NAME: what` (load
goes on with the other files: a file with an error contributes no rule).
"""

import dataclasses
import glob
import os
import re

import yaml

from st2bridge.alarms import match, sources
from st2bridge.text import one_line

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FIELDS = (
    "name",
    "description",
    "source",
    "criteria",
    "workflow",
    "namespace",
    "input",
    "dedup_key",
    "cooldown",
    "concurrency",
    "on_resolved",
    "enabled",
)
CONCURRENCY_FIELDS = ("key", "limit", "total", "overflow")
RESOLVED_FIELDS = ("workflow", "namespace", "input")
OVERFLOW = ("queue", "drop")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class RuleError(Exception):
    """One mistake in a rule file, as one line naming file and line."""


@dataclasses.dataclass
class Concurrency:
    key: object  # a Template, a fixed string, or None (one slot set for the rule)
    limit: int  # executions at once per key (per rule when there is no key)
    total: int | None  # at most this many at once over every key
    overflow: str  # queue | drop


@dataclasses.dataclass
class Rule:
    name: str
    source: str  # alertmanager, aodh, webhook
    webhook: str | None  # for webhook: the name it listens to (None: any)
    workflow: str
    namespace: str | None = None
    criteria: dict = dataclasses.field(default_factory=dict)  # path -> (steps, spec)
    input: dict = dataclasses.field(default_factory=dict)
    dedup_key: object = None  # Template or None (the source's default)
    cooldown: float = 0.0
    concurrency: Concurrency | None = None
    on_resolved: object = "nothing"  # "nothing", "cancel", or {workflow, namespace, input}
    enabled: bool = True
    description: str = ""
    file: str = ""
    line: int = 0

    def listens_to(self, source, name=None):
        if not self.enabled or self.source != source:
            return False
        return self.webhook is None or self.webhook == name

    @property
    def where(self):
        return "%s:%d" % (self.file, self.line)


# -- YAML with line numbers ------------------------------------------------------


class _Mapping(dict):
    """A mapping that remembers the line of itself and of each key."""

    line = 0
    lines: dict = {}


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    out = _Mapping()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.MarkedYAMLError(
                problem="duplicate key %r" % (key,), problem_mark=key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# -- loading ------------------------------------------------------------------------


def rule_files(rules_dir):
    return sorted(
        glob.glob(os.path.join(rules_dir, "*.yaml")) + glob.glob(os.path.join(rules_dir, "*.yml"))
    )


def load_dir(rules_dir):
    """(rules, errors): every valid rule of the folder's files, and one line
    per mistake. A missing folder has no rules (and no error)."""
    rules, problems, seen = [], [], {}
    if not os.path.isdir(rules_dir):
        return [], []
    for path in rule_files(rules_dir):
        found, errors = load_file(path)
        if errors:
            problems += errors
            continue
        for rule in found:
            if rule.name in seen:
                problems.append(
                    "%s: rule %s: the name is taken by the rule at %s"
                    % (rule.where, rule.name, seen[rule.name])
                )
                continue
            seen[rule.name] = rule.where
            rules.append(rule)
    return rules, problems


def load_file(path):
    """(rules, errors) of one file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        return [], ["%s:1: not UTF-8 text" % path]
    except OSError as exc:
        return [], ["%s:1: cannot read: %s" % (path, exc.strerror or exc)]
    return parse(text, path)


def parse(text, path="<rules>"):
    """(rules, errors) of a YAML text."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return [], ["%s:%d: invalid YAML: %s" % (path, line, exc.problem or exc.context)]
    except yaml.YAMLError as exc:
        return [], ["%s:1: invalid YAML: %s" % (path, one_line(exc))]
    items = []
    for document in documents:
        items += document if isinstance(document, list) else [document]
    rules, errors, names = [], [], set()
    for item in items:
        try:
            rule = build(item, path)
        except RuleError as exc:
            errors.append(str(exc))
            continue
        if rule.name in names:
            errors.append(
                "%s: rule %s: the name is used twice in this file" % (rule.where, rule.name)
            )
            continue
        names.add(rule.name)
        rules.append(rule)
    if not items:
        errors.append("%s:1: no rule in this file" % path)
    return rules, errors


def build(item, path):
    """A Rule from one YAML mapping; RuleError naming file, line and field."""
    if not isinstance(item, _Mapping):
        raise RuleError("%s:1: a rule must be a mapping (name:, source:, workflow:, ...)" % path)
    name = item.get("name")
    label = name if isinstance(name, str) and name else "?"

    def fail(field, message):
        line = item.lines.get(field, item.line) if field else item.line
        raise RuleError("%s:%d: rule %s: %s" % (path, line, label, message))

    for key in item:
        if key not in FIELDS:
            fail(key, "unknown field %r (known: %s)" % (key, ", ".join(FIELDS)))
    if not isinstance(name, str) or not NAME.match(name):
        fail(
            "name", "name must be 1-63 letters, digits and - _ . (starting with a letter or digit)"
        )
    for field in ("source", "workflow"):
        if field not in item:
            fail(None, "%s is required" % field)
    source, _, webhook = str(item["source"]).partition("/")
    if (
        not isinstance(item["source"], str)
        or source not in sources.SOURCES
        or (webhook and source != "webhook")
    ):
        fail("source", "source must be alertmanager, aodh, webhook or webhook/NAME")
    workflow = item["workflow"]
    if not isinstance(workflow, str) or not 0 < len(workflow) <= 255:
        fail("workflow", "workflow must name a workflow the engine holds")
    namespace = item.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        fail("namespace", "namespace must be a string")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        fail("enabled", "enabled must be true or false")
    criteria = {}
    raw = item.get("criteria") or {}
    if not isinstance(raw, dict):
        fail("criteria", "criteria must be a mapping of PATH: {equals|regex|in|exists: ...}")
    for path_text, spec in raw.items():
        try:
            criteria[path_text] = (match.parse_path(str(path_text)), match.check_criterion(spec))
        except ValueError as exc:
            line = raw.lines.get(path_text, item.line) if isinstance(raw, _Mapping) else item.line
            raise RuleError(
                "%s:%d: rule %s: criterion %s: %s" % (path, line, label, path_text, exc)
            ) from None
    inputs = item.get("input") or {}
    if not isinstance(inputs, dict):
        fail("input", "input must be a mapping of workflow input names to values")
    compiled_input = {}
    for key, value in inputs.items():
        try:
            compiled_input[str(key)] = match.compile_value(value)
        except match.TemplateError as exc:
            line = inputs.lines.get(key, item.line) if isinstance(inputs, _Mapping) else item.line
            raise RuleError(
                "%s:%d: rule %s: input %s: %s" % (path, line, label, key, exc)
            ) from None
    dedup = item.get("dedup_key")
    if dedup is not None and not isinstance(dedup, str):
        fail("dedup_key", "dedup_key must be a template string")
    try:
        dedup = match.compile_value(dedup) if dedup else None
    except match.TemplateError as exc:
        fail("dedup_key", str(exc))
    if dedup is None and "dedup_key" in item:
        fail("dedup_key", "dedup_key must not be empty")
    cooldown = _duration(item.get("cooldown", 0), lambda m: fail("cooldown", m))
    concurrency = _concurrency(item.get("concurrency"), lambda m: fail("concurrency", m))
    on_resolved = _on_resolved(item.get("on_resolved", "nothing"), lambda m: fail("on_resolved", m))
    return Rule(
        name=name,
        source=source,
        webhook=webhook or None,
        workflow=workflow,
        namespace=namespace,
        criteria=criteria,
        input=compiled_input,
        dedup_key=dedup,
        cooldown=cooldown,
        concurrency=concurrency,
        on_resolved=on_resolved,
        enabled=enabled,
        description=str(item.get("description") or ""),
        file=path,
        line=item.line,
    )


def _duration(value, fail):
    if isinstance(value, bool):
        fail("cooldown must be a duration: seconds, or 30s, 10m, 1h, 1d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            fail("cooldown must be a duration: seconds, or 30s, 10m, 1h, 1d")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0 or seconds > 366 * 86400:
        fail("cooldown must be between 0 and a year")
    return seconds


def _positive(value, what, fail):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100000:
        fail("%s must be a whole number from 1 to 100000" % what)
    return value


def _concurrency(value, fail):
    if value is None:
        return None
    if not isinstance(value, dict):
        fail("concurrency must be a mapping {key, limit, total, overflow}")
    unknown = sorted(set(value) - set(CONCURRENCY_FIELDS))
    if unknown:
        fail(
            "unknown concurrency field %s (known: %s)"
            % (", ".join(unknown), ", ".join(CONCURRENCY_FIELDS))
        )
    if "limit" not in value and "total" not in value:
        fail("concurrency needs a limit (per key) or a total")
    key = value.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        fail("concurrency key must be a template string")
    try:
        key = match.compile_value(key) if key else None
    except match.TemplateError as exc:
        fail(str(exc))
    overflow = value.get("overflow", "queue")
    if overflow not in OVERFLOW:
        fail("overflow must be queue or drop")
    total = value.get("total")
    return Concurrency(
        key=key,
        limit=_positive(value.get("limit", total), "limit", fail),
        total=_positive(total, "total", fail) if total is not None else None,
        overflow=overflow,
    )


def _on_resolved(value, fail):
    if value in ("nothing", "cancel"):
        return value
    if not isinstance(value, dict):
        fail("on_resolved must be nothing, cancel, or {workflow, namespace, input}")
    unknown = sorted(set(value) - set(RESOLVED_FIELDS))
    if unknown:
        fail(
            "unknown on_resolved field %s (known: %s)"
            % (", ".join(unknown), ", ".join(RESOLVED_FIELDS))
        )
    if not isinstance(value.get("workflow"), str) or not value["workflow"]:
        fail("on_resolved needs a workflow")
    if value.get("namespace") is not None and not isinstance(value["namespace"], str):
        fail("on_resolved namespace must be a string")
    if not isinstance(value.get("input") or {}, dict):
        fail("on_resolved input must be a mapping")
    try:
        compiled = match.compile_value(dict(value.get("input") or {}))
    except match.TemplateError as exc:
        fail(str(exc))
    return {"workflow": value["workflow"], "namespace": value.get("namespace"), "input": compiled}


class RuleSet:
    """The rules in force; replaced whole on a reload (SIGHUP)."""

    def __init__(self, rules=(), errors=(), rules_dir=None):
        self.rules = list(rules)
        self.errors = list(errors)
        self.rules_dir = rules_dir

    @classmethod
    def load(cls, rules_dir):
        rules, errors = load_dir(rules_dir)
        return cls(rules, errors, rules_dir)

    def for_source(self, source, name=None):
        return [r for r in self.rules if r.listens_to(source, name)]

    def get(self, name):
        for rule in self.rules:
            if rule.name == name:
                return rule
        return None
