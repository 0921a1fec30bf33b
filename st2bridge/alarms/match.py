"""What a rule asks of an alert: paths into it, criteria, and templates.

Paths: `labels.instance`, `annotations.summary`, `body.host.name`,
`reason_data.items[0]` (a leading `$.` is allowed: `$.body.host`). A path
that does not resolve is "missing" (criterion `exists: false` holds).

Criteria: `{equals: V}`, `{regex: PATTERN}` (re.search on the text of the
value), `{in: [V, ...]}`, `{exists: true|false}`; a bare value is `equals`.
Several in one mapping must all hold.

Templates are Jinja2 in the sandbox (jinja2.sandbox): no attribute starting
with `_`, no changing of objects, no imports; an undefined name is an error
(StrictUndefined), so a typo shows in `event get` instead of an empty value.
A template that is one `{{ expression }}` alone gives the expression's value
as it is (a list, a number from `| int`, a string label stays a string);
anything else renders to a string.
"""

import re

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from st2bridge.text import shorten

OPS = ("equals", "regex", "in", "exists")
MISSING = object()
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_ALONE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)

ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class TemplateError(Exception):
    """A template that cannot be compiled or rendered (one line)."""


def parse_path(path):
    """The steps of a path (keys and list indexes); ValueError if malformed."""
    text = path[2:] if path.startswith("$.") else path
    steps, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError("path %r: unexpected %r at %d" % (path, text[pos], pos))
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
        if pos < len(text) and text[pos] == ".":
            pos += 1
            if pos == len(text):
                raise ValueError("path %r ends with a dot" % path)
    if not steps:
        raise ValueError("path %r is empty" % path)
    return steps


def lookup(value, steps):
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return MISSING
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return MISSING
            value = value[step]
    return value


def check_criterion(spec):
    """The criterion in its full form {op: value}; ValueError naming what is wrong."""
    if not isinstance(spec, dict):
        return {"equals": spec}
    unknown = sorted(set(spec) - set(OPS))
    if unknown:
        raise ValueError("unknown criterion %s (known: %s)" % (", ".join(unknown), ", ".join(OPS)))
    if not spec:
        raise ValueError("an empty criterion (use one of %s)" % ", ".join(OPS))
    if "regex" in spec:
        if not isinstance(spec["regex"], str):
            raise ValueError("regex must be a string")
        try:
            re.compile(spec["regex"])
        except re.error as exc:
            raise ValueError("invalid regex %r: %s" % (spec["regex"], exc)) from None
    if "in" in spec and not isinstance(spec["in"], list):
        raise ValueError("in must be a list")
    if "exists" in spec and not isinstance(spec["exists"], bool):
        raise ValueError("exists must be true or false")
    return dict(spec)


def _equal(actual, expected):
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    if isinstance(actual, str) != isinstance(expected, str):
        return str(actual) == str(expected)  # a label "1" equals 1
    return actual == expected


def holds(spec, actual):
    """(True, None) or (False, why) for one criterion on one value."""
    present = actual is not MISSING
    if "exists" in spec and spec["exists"] != present:
        return False, "is missing" if spec["exists"] else "exists"
    if not present and any(op in spec for op in ("equals", "regex", "in")):
        return False, "is missing"
    if "equals" in spec and not _equal(actual, spec["equals"]):
        return False, "is %s, not %s" % (_short(actual), _short(spec["equals"]))
    if "regex" in spec and not re.search(spec["regex"], _text(actual)):
        return False, "%s does not match /%s/" % (_short(actual), spec["regex"])
    if "in" in spec and not any(_equal(actual, v) for v in spec["in"]):
        return False, "%s is not in %s" % (_short(actual), _short(spec["in"]))
    return True, None


def matches(criteria, context):
    """(True, None) when every criterion holds, else (False, "PATH why")."""
    for path, (steps, spec) in criteria.items():
        ok, why = holds(spec, lookup(context, steps))
        if not ok:
            return False, "%s %s" % (path, why)
    return True, None


def _text(value):
    return value if isinstance(value, str) else str(value)


def _short(value):
    return shorten(repr(value) if isinstance(value, str) else str(value), 80)


class Template:
    """One compiled template (see the module docstring)."""

    def __init__(self, source):
        self.source = source
        try:
            alone = _ALONE.match(source)
            if alone and "{{" not in alone.group(1) and "}}" not in alone.group(1):
                self._expr = ENV.compile_expression(alone.group(1), undefined_to_none=False)
                self._template = None
            else:
                self._expr = None
                self._template = ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError("template %r: %s" % (_cut(source), exc.message)) from None

    def render(self, context):
        try:
            if self._expr is not None:
                value = self._expr(**context)
                if isinstance(value, jinja2.Undefined):
                    str(value)  # raises UndefinedError with the name
                return value
            return self._template.render(**context)
        except jinja2.TemplateError as exc:
            raise TemplateError("template %r: %s" % (_cut(self.source), exc)) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise TemplateError("template %r: %s" % (_cut(self.source), exc)) from None


def compile_value(value):
    """Strings become Templates, inside lists and mappings too."""
    if isinstance(value, str):
        return Template(value) if ("{{" in value or "{%" in value) else value
    if isinstance(value, list):
        return [compile_value(v) for v in value]
    if isinstance(value, dict):
        return {k: compile_value(v) for k, v in value.items()}
    return value


def render_value(value, context):
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    return value


def render_text(value, context):
    """A key (dedup, concurrency): always a string."""
    out = render_value(value, context)
    return out if isinstance(out, str) else str(out)


def _cut(text):
    return text if len(text) <= 60 else text[:57] + "..."
