"""The API's WSGI server: the backend's hardened listener (connection cap,
read deadline for slow clients, header cap; bodies over [api] max_body are
refused by the routes before they are read)."""


def serve(backend, app, host, port, logger, max_connections=1024, max_body=None):
    """Listen on host:port and serve `app` in this process's workers;
    returns the server (.address, .stop())."""
    return backend.wsgi_server(
        app, host, port, logger, name="api", max_connections=max_connections, max_body=max_body
    )
