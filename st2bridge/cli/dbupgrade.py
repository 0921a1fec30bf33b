"""`st2bridge db-upgrade`: upgrade the engine's and the bridge's schemas safely.

Exit codes: 0 done (or nothing to do), 2 bad configuration or arguments,
8 services running, 9 data at risk, 10 migration failed, 11 database
unreachable, 12 another db-upgrade holds the lock, 13 (--check) migrations
pending. See docs/db-upgrade.md.
"""

import json
import sys

from st2bridge import errors
from st2bridge.text import one_line

HELP = "upgrade the engine's and the bridge's database schemas safely"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "db-upgrade",
        help=HELP,
        description=HELP + ": refuses while services run, removes "
        "what the services auto-created (only when it holds no rows), runs the migrations "
        "and checks the result.",
    )
    parser.add_argument(
        "--target",
        choices=["engine", "bridge", "all"],
        default="all",
        help="which database (default: all)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the plan and change nothing")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only tell whether migrations are pending (exit 13 if so); "
        "for use before services start",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="drop auto-created objects that hold rows, after exporting those rows to a file",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask before dropping objects")
    parser.add_argument(
        "--json", action="store_true", help="print the plan and result as JSON on stdout"
    )
    parser.set_defaults(handler=cmd_db_upgrade)
    return parser


def cmd_db_upgrade(args, conf):
    from st2bridge.dbupgrade.guard import Guard  # SQLAlchemy only when asked for

    if args.check and (args.dry_run or args.force):
        raise errors.InputError("--check cannot be combined with --dry-run or --force")
    guard = Guard(
        conf,
        target=args.target,
        dry_run=args.dry_run,
        check=args.check,
        force=args.force,
        yes=args.yes,
        confirm=_ask if sys.stdin.isatty() else None,
    )
    try:
        code = guard.run()
    except errors.BridgeError as exc:
        if args.json:
            guard.report.update(
                status="refused",
                exit_code=exc.exit_code,
                error=guard.redact(one_line(exc)),
            )
            print(json.dumps(guard.report, indent=2, sort_keys=True))
        exc.args = (guard.redact(one_line(exc)),)
        raise
    if args.json:
        guard.report["exit_code"] = code
        print(json.dumps(guard.report, indent=2, sort_keys=True))
    return code


def _ask(prompt):
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False
