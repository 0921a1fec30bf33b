"""Times on the command line: `--since` values in, durations out."""

import datetime
import re

from st2bridge import errors

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_since(text, now):
    """Epoch seconds for `--since`: an ISO 8601 time (UTC unless it carries an
    offset; a date alone is its midnight) or a span back from `now` such as
    `30m`, `1h`, `2d`, `1h30m`. InputError otherwise."""
    value = (text or "").strip().lower()
    if value and _RELATIVE.sub("", value) == "":
        return now - sum(float(n) * _UNITS[u] for n, u in _RELATIVE.findall(value))
    try:
        iso = value.upper()
        if iso.endswith("Z"):  # Python 3.10's fromisoformat has no 'Z'
            iso = iso[:-1] + "+00:00"
        when = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise errors.InputError(
            "--since %r is neither a time (2026-11-21T12:00, UTC unless an offset is "
            "given) nor a span back from now (30m, 1h, 2d, 1h30m)" % text
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def duration(seconds):
    """A short human duration: 850ms, 4.2s, 3m05s, 2h04m, 3d02h."""
    if seconds is None:
        return None
    seconds = max(0.0, float(seconds))
    if seconds < 1:
        return "%dms" % round(seconds * 1000)
    if seconds < 60:
        return "%.1fs" % seconds
    whole = int(seconds)
    if whole < 3600:
        return "%dm%02ds" % divmod(whole, 60)
    if whole < 86400:
        return "%dh%02dm" % (whole // 3600, whole % 3600 // 60)
    return "%dd%02dh" % (whole // 86400, whole % 86400 // 3600)
