"""Messages squeezed to one line: the one helper every error path uses.

An operator reads errors in a log line, a table cell, a JSON field or on
stderr, so a message (or an exception) is shown on one line: runs of white
space, new lines included, become one space. An engine message is different:
Mistral repeats a whole sub-workflow's tree or a Python traceback below the
first line, so `first_line=True` keeps only the first meaningful line (of a
traceback, its last line: the exception).
"""

from __future__ import annotations

_TRACEBACK = "Traceback (most recent call last)"


def one_line(value: object, *, first_line: bool = False, limit: int | None = None) -> str:
    """`value` (text or an exception) on one line, capped at `limit` characters
    ("..." marks the cut). An exception with no message gives its class name;
    empty text gives ""."""
    text = str(value) if value is not None else ""
    if first_line:
        lines = [ln for ln in text.splitlines() if any(ch.isalnum() for ch in ln)]
        if lines:
            text = lines[-1] if lines[0].strip().startswith(_TRACEBACK) else lines[0]
        else:
            text = ""
    line = " ".join(text.split())
    if not line and isinstance(value, BaseException):
        line = type(value).__name__
    return shorten(line, limit)


def shorten(text: str, limit: int | None) -> str:
    """`text` cut to at most `limit` characters, "..." marking the cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(limit - 3, 0)].rstrip() + "..."
