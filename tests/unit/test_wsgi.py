"""The status line the bridge's WSGI apps share (st2bridge/wsgi.py)."""

from st2bridge.wsgi import status_line


def test_status_lines():
    assert status_line(200) == "200 OK"
    assert status_line(404) == "404 Not Found"
    assert status_line(413) == "413 Payload Too Large"  # what the apps always answered
    assert status_line(431) == "431 Request Header Fields Too Large"
    assert status_line(599) == "599"  # not a registered code
