"""`st2bridge apikey create|list|revoke`: the keys of st2bridge-api.

A key is printed once, alone on the last line of `create` (scripts take the
last line); the store keeps only its SHA-256.
"""

import time

from st2bridge import app, errors
from st2bridge.api import auth
from st2bridge.cli import output


def add_parser(commands):
    apikey = commands.add_parser("apikey", help="API keys of st2bridge-api")
    sub = apikey.add_subparsers(dest="apikey_command", metavar="COMMAND", required=True)
    create = sub.add_parser("create", help="make a key (printed once, on the last line)")
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--read-only", action="store_true", help="the key may read and follow, not change"
    )
    create.set_defaults(handler=cmd_create)
    ls = sub.add_parser("list", help="keys (never the keys themselves)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)
    revoke = sub.add_parser("revoke", help="stop a key from working (at once)")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(handler=cmd_revoke)


def cmd_create(args, conf):
    with app.build_store(conf) as store:
        key, record = auth.create(store, args.name, args.read_only, time.time())
    print(
        "API key %s created (%s). It is shown only now; the store keeps its hash:"
        % (record["name"], "read-only" if record["read_only"] else "read-write")
    )
    print(key)
    return errors.EXIT_OK


def cmd_list(args, conf):
    with app.build_store(conf) as store:
        keys = store.list_api_keys()
    rows = [
        {
            "name": k["name"],
            "access": "read-only" if k.get("read_only") else "read-write",
            "created_at": output.iso(k.get("created_at")),
            "revoked_at": output.iso(k.get("revoked_at")),
        }
        for k in keys
    ]
    if args.json:
        print(output.dumps(rows))
    else:
        print(
            output.table(rows, ["name", "access", "created_at", "revoked_at"])
            if rows
            else "no API keys (st2bridge apikey create NAME)"
        )
    return errors.EXIT_OK


def cmd_revoke(args, conf):
    with app.build_store(conf) as store:
        store.revoke_api_key(args.name, time.time())
    print("API key %s revoked: requests with it are refused from now on" % args.name)
    return errors.EXIT_OK
