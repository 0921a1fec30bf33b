"""The API's WSGI server: one function, so that the concurrency seam's
hardened server (read deadlines, connection caps, an EMFILE-safe accept
loop; branch `seam`) replaces today's in one line."""

from st2bridge import green


def serve(app, host, port, logger, max_connections=1024):
    """Listen on host:port and serve `app` in this process's green threads;
    returns the server (.address, .stop())."""
    return green.WsgiServer(app, host, port, logger, max_connections=max_connections, name="api")
