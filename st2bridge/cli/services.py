"""`st2bridge services`: which bridge daemons run, and can the bridge reach
its engine and store."""

import time

import requests

from st2bridge import app, config, errors, registry
from st2bridge.cli import output

HEALTH_TIMEOUT = 3.0
COLUMNS = ["name", "where", "state", "detail"]


def collect(conf, now=None):
    """Rows {name, where, state, detail}: registry entries, engine, store."""
    now = now or time.time()
    rows = []
    try:
        with app.build_store(conf, create=False) as store:
            healthy, health = store.health()
            for service in store.list_services():
                state, age = registry.liveness(service, now, conf.resultstracker.heartbeat_interval)
                stats = (service.get("info") or {}).get("stats") or {}
                detail = "heartbeat %.0f s ago, pid %s, version %s" % (
                    age,
                    service.get("pid"),
                    service.get("version"),
                )
                if stats:
                    detail += ", %s checks, %s tracked" % (stats.get("polls"), stats.get("tracked"))
                rows.append(
                    {
                        "name": service["name"],
                        "where": service["host"],
                        "state": state,
                        "detail": detail,
                        "id": service["id"],
                    }
                )
        rows.append(
            {
                "name": "store",
                "where": conf.store.url.split("://")[0],
                "state": "up" if healthy else "down",
                "detail": health,
            }
        )
    except errors.StoreError as exc:
        rows.append(
            {
                "name": "store",
                "where": conf.store.url.split("://")[0],
                "state": "down",
                "detail": str(exc),
            }
        )
    engine = app.build_engine(conf, retry=False, interactive=True)
    try:
        engine.ping()
        rows.append(
            {"name": "engine API", "where": engine.display_url, "state": "up", "detail": "answers"}
        )
    except errors.EngineError as exc:
        rows.append(
            {"name": "engine API", "where": engine.display_url, "state": "down", "detail": str(exc)}
        )
    finally:
        engine.close()
    listener = callback_listener(conf)
    if listener:
        rows.append(listener)
    return rows


def callback_listener(conf, timeout=HEALTH_TIMEOUT):
    """GET {callback url}/v1/health: can the engine reach the trackers'
    callback listener? None in poll mode (no callbacks are asked for)."""
    if conf.resultstracker.mode == "poll":
        return None
    url = config.callback_url(conf)
    row = {"name": "callback listener", "where": url, "state": "down"}
    try:
        resp = requests.get(url + "/v1/health", timeout=timeout)
    except requests.ConnectionError as exc:
        refused = "refused" in str(exc).lower()
        row["detail"] = (
            "connection refused (no tracker listening?)"
            if refused
            else "cannot connect: %s" % type(exc).__name__
        )
        return row
    except requests.Timeout:
        row["detail"] = "no answer within %g s" % timeout
        return row
    except requests.RequestException as exc:
        row["detail"] = "request failed: %s" % type(exc).__name__
        return row
    if resp.status_code != 200:
        row["detail"] = "GET /v1/health answered HTTP %d" % resp.status_code
        return row
    try:
        counts = resp.json().get("callbacks") or {}
    except ValueError:
        counts = {}
    row.update(
        state="up",
        detail="answers; %s callbacks accepted, %s rejected"
        % (counts.get("accepted", "?"), counts.get("rejected", "?")),
    )
    return row


def cmd_services(args, conf):
    rows = collect(conf)
    output.emit_rows(
        args,
        rows,
        ["name", "where", "state", "detail", "id"],
        lambda rows: output.table(rows, COLUMNS, output.terminal_width()),
    )
    return errors.EXIT_OK
