"""Keeping secrets out of logs, bug reports and what is shown.

`Redactor` is the one masker: it replaces known secrets, passwords written
inside URLs (`scheme://user:PASSWORD@host`), the values of secret keys in a
dict and secrets found by pattern with ***, in a text or in nested values.
Its users: log files (the configuration's secrets), `collect-logs`,
`db-upgrade` output (database passwords), records shown (secret workflow
input) and the callback secret in what the engine returns
(st2bridge.callbacks.secrets).

A configuration secret is the value of any option registered with
`secret=True` (the engine token, the Keystone password, the store URL, the
db-upgrade connections) and any password written inside a URL, in whatever
option it appears.
"""

import re
from urllib.parse import unquote

from st2bridge import config

MASK = "***"
# Shorter values are not masked inside texts: masking every "ab" would garble
# the text, and a secret that short protects nothing anyway.
MIN_SECRET_LEN = 4

# scheme://user:PASSWORD@host -- the user part may be empty (redis://:pw@host).
_URL_PASSWORD = re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)")


def mask_urls(text):
    """The text with every password inside a URL replaced by ***."""
    return _URL_PASSWORD.sub(lambda m: m.group("pre") + MASK, text)


def url_passwords(text):
    """The passwords written inside URLs in `text`, as written and URL-decoded."""
    found = set()
    for match in _URL_PASSWORD.finditer(text):
        found.update((match.group("pw"), unquote(match.group("pw"))))
    return found


def _values(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return ["%s:%s" % item for item in value.items()]
    return [str(value)]


def _options(conf):
    """(group name, opt, value) for every bridge option."""
    for group, opts in config.GROUPS:
        node = conf if group is None else conf[group]
        for opt in opts:
            yield group or "DEFAULT", opt, getattr(node, opt.dest)


def secret_values(conf):
    """Every secret the configuration holds (see the module docstring)."""
    secrets = set()
    for _, opt, value in _options(conf):
        for text in _values(value):
            if opt.secret and not _is_url(text):
                secrets.add(text)
            secrets.update(url_passwords(text))
    return {s for s in secrets if len(s) >= MIN_SECRET_LEN}


def _is_url(value):
    """A URL's secret is its password (masked on its own): the rest of it,
    such as an SQLite path, helps whoever reads a bug report."""
    return isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


class Redactor:
    """Masks secrets with ***: `redactor(text)` in a text, `redactor.values(v)`
    in texts nested in dicts and lists.

    `secrets`: texts masked wherever they appear (longest first, so a secret
    that contains another is masked whole; shorter than `min_length`, ignored).
    `urls`: mask passwords written inside URLs. `keys`: dict keys (any case)
    whose non-empty values are masked whole. `patterns`: compiled expressions
    whose group 2 is masked (group 1, kept, says what the secret is).
    """

    def __init__(self, secrets=(), *, min_length=MIN_SECRET_LEN, urls=True, keys=(), patterns=()):
        self.min_length = min_length
        self.urls = urls
        self.keys = frozenset(k.lower() for k in keys)
        self.patterns = tuple(patterns)
        self.secrets = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret):
        """Mask `secret` from now on (None, empty or too short: ignored)."""
        if secret and len(secret) >= self.min_length and secret not in self.secrets:
            self.secrets.append(secret)
            self.secrets.sort(key=len, reverse=True)

    def __call__(self, text):
        if self.urls:
            text = mask_urls(text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in self.patterns:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def values(self, value):
        """A copy of `value` (texts, lists, dicts) with every secret masked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {
                k: MASK if v and isinstance(k, str) and k.lower() in self.keys else self.values(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.values(v) for v in value]
        return value


def database_url(url):
    """A database URL fit for output: its password as *** (SQLAlchemy parses
    it, so a password holding @ or / is masked whole); unparsable, a placeholder."""
    from sqlalchemy.engine import make_url  # the dbupgrade extra; only its users call this
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, AttributeError):
        return "<database URL>"


def effective_config(conf):
    """{group: {option: value}} as the bridge sees it, with every secret
    option shown as *** when set (a URL: its password), and URL passwords
    masked everywhere."""
    out = {}
    for group, opt, value in _options(conf):
        if opt.secret and value not in (None, "", []) and not _is_url(value):
            value = MASK
        elif isinstance(value, str):
            value = mask_urls(value)
        elif isinstance(value, (list, tuple)):
            value = [mask_urls(v) if isinstance(v, str) else v for v in value]
        out.setdefault(group, {})[opt.name] = value
    return out


def config_text(conf):
    """The effective configuration as an INI text (values redacted)."""
    lines = [
        "# effective configuration of st2bridge; secrets shown as %s" % MASK,
        "# read from: %s" % (", ".join(conf.config_file or []) or "(defaults only)"),
    ]
    for group, values in effective_config(conf).items():
        lines.append("\n[%s]" % group)
        for name, value in values.items():
            if isinstance(value, list):
                for item in value or [""]:
                    lines.append("%s = %s" % (name, item))
            else:
                lines.append("%s = %s" % (name, "" if value is None else value))
    return "\n".join(lines) + "\n"


# -- secrets in workflow input ---------------------------------------------------
# As StackStorm masks `secret: true` parameters: an input value whose key names a
# secret, or is listed in [DEFAULT] secret_input_keys, is shown as *** outside
# the store (command output, the web view, logs, collect-logs), and its text is
# masked wherever it shows up again (an output or error that repeats it).

SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "pass", "token", "secret", "key", "apikey", "credential"}
)
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_extra_keys = frozenset()


def configure(conf):
    """Take [DEFAULT] secret_input_keys (every command and daemon calls it
    once its configuration is loaded)."""
    global _extra_keys
    _extra_keys = frozenset(k.strip().lower() for k in conf.secret_input_keys or () if k.strip())


def is_secret_key(name, extra=None):
    """Whether an input key names a secret: a word of it (api_key, authToken,
    DB-PASSWORD) is one of SECRET_WORDS, or the key is listed."""
    name = str(name)
    extra = _extra_keys if extra is None else extra
    if name.lower() in extra:
        return True
    words = [w.lower() for w in _WORDS.findall(name)]
    return any(w in SECRET_WORDS or (w.endswith("s") and w[:-1] in SECRET_WORDS) for w in words)


def mask_input(value, extra=None):
    """A copy of an input value with the values of secret keys as ***."""
    if isinstance(value, dict):
        return {
            k: MASK if is_secret_key(k, extra) else mask_input(v, extra) for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_input(v, extra) for v in value]
    return value


def input_secrets(value, extra=None, _inside=False):
    """The texts of secret input values (long enough to be masked in texts)."""
    found = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= input_secrets(v, extra, _inside or is_secret_key(k, extra))
    elif isinstance(value, list):
        for v in value:
            found |= input_secrets(v, extra, _inside)
    elif _inside and value is not None and not isinstance(value, bool):
        text = str(value)
        if len(text) >= MIN_SECRET_LEN:
            found.add(text)
    return found


def mask_values(value, secrets):
    """`value` (texts, lists, dicts) with every one of `secrets` masked (and,
    when there are any, URL passwords)."""
    return Redactor(secrets).values(value) if secrets else value


def mask_record(record, extra=None):
    """A copy of an execution record fit to show: secret input values as
    ***, and their texts masked in output, error and tasks."""
    secrets = input_secrets(record.get("input"), extra)
    masked = dict(record, input=mask_input(record.get("input"), extra))
    if secrets:
        for field in ("output", "error", "tasks"):
            if masked.get(field) is not None:
                masked[field] = mask_values(masked[field], secrets)
    return masked
