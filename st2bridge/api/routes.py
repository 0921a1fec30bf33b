"""The route table of st2bridge-api, and its small handlers (health, the
OpenAPI document, the stream, metrics)."""

import time

from st2bridge import __version__, control, errors
from st2bridge.api import openapi, stream
from st2bridge.api.app import ID, Route, Stream, make_app
from st2bridge.api.executions import ExecutionHandlers
from st2bridge.text import one_line

STREAM_PARAMS = {"execution", "last_event_id"}


def build(
    store,
    engine,
    starter,
    feed,
    *,
    metrics=None,
    max_body=1048576,
    keepalive=15.0,
    clock=time.time,
    extra_routes=(),
    stuck_conf=None,
):
    """The WSGI application. `extra_routes`: more Route objects (the event
    endpoints of the alarms work), authenticated the same way."""
    ex = ExecutionHandlers(store, engine, starter, clock=clock, stuck_conf=stuck_conf)
    document = openapi.document()

    def health(request):
        try:
            store.last_change_seq()
        except errors.StoreError as exc:
            return 503, {
                "status": "down",
                "store": "down",
                "version": __version__,
                "detail": one_line(exc),
            }
        return 200, {"status": "ok", "store": "up", "version": __version__}

    def spec(request):
        return 200, document

    def events(request):
        unknown = sorted(set(request.query) - STREAM_PARAMS)
        if unknown:
            raise errors.InputError(
                "unknown query parameter %s (known: %s)"
                % (", ".join(unknown), ", ".join(sorted(STREAM_PARAMS)))
            )
        last = stream.parse_last_id(
            request.header("Last-Event-ID") or (request.query.get("last_event_id") or [None])[0]
        )
        only = (request.query.get("execution") or [None])[0]
        if only is not None:
            only = control.resolve(store, only)["id"]
        if last is not None and last > feed.cursor:
            last = feed.cursor  # an id from the future (another store?): follow from now
        # eventlet's server holds back writes under 4 KB unless told not to.
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        return Stream(
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("X-Accel-Buffering", "no"),
            ],
            stream.events(feed, last, only, keepalive),
        )

    def prometheus(request):
        if metrics is None:
            raise errors.NotFound("metrics are off")
        return Stream([("Content-Type", metrics.content_type)], [metrics.render()])

    routes = [
        Route("GET", "/v1/health", health, public=True),
        Route("GET", "/v1/openapi.json", spec),
        Route("POST", "/v1/executions", ex.start, write=True),
        Route("GET", "/v1/executions", ex.list),
        Route("GET", "/v1/executions/" + ID, ex.get),
        Route("GET", "/v1/executions/" + ID + "/tasks", ex.tasks),
        Route("POST", "/v1/executions/" + ID + "/(cancel|pause|resume)", ex.change, write=True),
        Route("POST", "/v1/executions/" + ID + "/recover", ex.recover, write=True),
        Route("POST", "/v1/tasks/" + ID + "/rerun", ex.rerun, write=True),
        Route("GET", "/v1/stream", events),
        Route("GET", "/metrics", prometheus),
    ] + list(extra_routes)
    observers = [metrics.observe_request] if metrics is not None else []
    return make_app(store, routes, max_body=max_body, observers=observers)
