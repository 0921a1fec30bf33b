"""What the bridge's WSGI apps (the API, the web view, the callback listener) share."""

import http

# What the apps answered before this module (RFC 7231's name; Python's is older).
_PHRASES = {413: "Payload Too Large"}


def status_line(status):
    """The WSGI status line of an HTTP status code: "404 Not Found"."""
    try:
        phrase = _PHRASES.get(status) or http.HTTPStatus(status).phrase
    except ValueError:  # not a registered code: the number says it all
        phrase = ""
    return ("%d %s" % (status, phrase)).rstrip()
