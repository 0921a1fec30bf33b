"""`st2bridge services`: which bridge daemons run, and can the bridge reach
its engine and store."""

import time

from st2bridge import app, errors, registry
from st2bridge.cli import output


def collect(conf, now=None):
    """Rows {name, where, state, detail}: registry entries, engine, store."""
    now = now or time.time()
    rows = []
    try:
        with app.build_store(conf) as store:
            for service in store.list_services():
                state, age = registry.liveness(service, now, conf.resultstracker.heartbeat_interval)
                stats = (service.get("info") or {}).get("stats") or {}
                detail = "heartbeat %.0f s ago, pid %s, version %s" % (
                    age, service.get("pid"), service.get("version"))
                if stats:
                    detail += ", %s checks, %s tracked" % (stats.get("polls"), stats.get("tracked"))
                rows.append({"name": service["name"], "where": service["host"], "state": state,
                             "detail": detail, "id": service["id"]})
        rows.append({"name": "store", "where": conf.store.url.split("://")[0], "state": "up",
                     "detail": "reachable"})
    except errors.StoreError as exc:
        rows.append({"name": "store", "where": conf.store.url.split("://")[0], "state": "down",
                     "detail": str(exc)})
    engine = app.build_engine(conf, retry=False)
    try:
        engine.ping()
        rows.append({"name": "engine API", "where": engine.display_url, "state": "up",
                     "detail": "answers"})
    except errors.EngineError as exc:
        rows.append({"name": "engine API", "where": engine.display_url, "state": "down",
                     "detail": str(exc)})
    finally:
        engine.close()
    return rows


def cmd_services(args, conf):
    rows = collect(conf)
    if args.json:
        print(output.dumps(rows))
    else:
        print(output.table(rows, ["name", "where", "state", "detail"]))
    return errors.EXIT_OK
