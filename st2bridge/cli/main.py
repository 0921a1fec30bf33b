"""`st2bridge`: the command line. Thin: parse, build, run, exit with a code.

Every failure the user can cause or fix ends as one line on stderr and a named
exit code (st2bridge.errors); tracebacks are for bugs only.
"""

import argparse
import os
import sys
import time

from st2bridge import __version__, app, config, errors
from st2bridge.cli import collect, dbupgrade, doctor, executions, hints, run, services, workflows
from st2bridge.cli import stuck as stuckcli


def build_parser():
    parser = argparse.ArgumentParser(
        prog="st2bridge", description="Run workflows on the Mistral engine and track their results."
    )
    parser.add_argument(
        "--config-file",
        action="append",
        metavar="PATH",
        help="config file (default /etc/st2bridge/bridge.conf, or "
        "$ST2BRIDGE_CONFIG_FILE); may be repeated",
    )
    parser.add_argument("--config-dir", metavar="DIR", help="directory of *.conf files")
    parser.add_argument("--version", action="version", version="st2bridge " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run.add_parser(commands)
    workflows.add_parser(commands)
    execution_sub = executions.add_parsers(commands)  # execution list/get/…, task rerun
    stuckcli.add_parsers(execution_sub)  # execution list --stuck, execution recover

    track = commands.add_parser("track", help="have the trackers poll an execution again")
    track.add_argument("id")
    track.set_defaults(handler=cmd_track)
    untrack = commands.add_parser("untrack", help="stop polling an execution")
    untrack.add_argument("id")
    untrack.set_defaults(handler=cmd_untrack)

    svc = commands.add_parser("services", help="bridge daemons, engine API and store: up or down")
    svc.add_argument("--json", action="store_true")
    svc.set_defaults(handler=services.cmd_services)

    dbupgrade.add_parser(commands)
    collect.add_parser(commands)
    doctor.add_parser(commands)
    return parser


def cmd_track(args, conf):
    """Attach polling again (the prior art's st2-track-result): for an
    execution whose callbacks were lost or that was untracked."""
    with app.build_store(conf) as store:
        record = store.get_execution(args.id)
        if not store.update_execution(
            args.id,
            {
                "tracked": True,
                "next_poll_at": time.time(),
                "poll_failures": 0,
                "not_found_count": 0,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        ):
            raise errors.Conflict(
                "execution %s is %s already; there is nothing to track"
                % (args.id, record["status"])
            )
    print("execution %s is tracked; a running tracker checks it within one interval" % args.id)
    return errors.EXIT_OK


def cmd_untrack(args, conf):
    with app.build_store(conf) as store:
        store.get_execution(args.id)
        store.update_execution(args.id, {"tracked": False}, if_active=False)
    print(
        "execution %s is no longer polled (`%s track %s` attaches it again)"
        % (args.id, hints.prog(args), args.id)
    )
    return errors.EXIT_OK


def oslo_args(args):
    files = args.config_file or (
        [os.environ["ST2BRIDGE_CONFIG_FILE"]] if os.environ.get("ST2BRIDGE_CONFIG_FILE") else []
    )
    argv = []
    for path in files:
        argv += ["--config-file", path]
    if args.config_dir:
        argv += ["--config-dir", args.config_dir]
    return argv


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "loads_config", False):  # doctor reports a bad config itself
            return args.handler(args, oslo_args(args))
        conf = config.load(oslo_args(args))
        app.setup_logging(conf, quiet=True, component=app.logs.command_component(args.command))
        return args.handler(args, conf)
    except errors.BridgeError as exc:
        print("st2bridge: error: %s" % hints.repeat_config(_one_line(exc), args), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("st2bridge: interrupted", file=sys.stderr)
        return 130


def _one_line(exc):
    return " ".join(str(exc).split()) or exc.__class__.__name__


if __name__ == "__main__":
    sys.exit(main())
