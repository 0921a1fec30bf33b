"""`st2bridge`: the command line. Thin: parse, build, run, exit with a code.

Every failure the user can cause or fix ends as one line on stderr and a named
exit code (st2bridge.errors); tracebacks are for bugs only.
"""

import argparse
import os
import sys
import time
import traceback

from st2bridge import __version__, app, config, control, errors, schedule
from st2bridge import status as st
from st2bridge.cli import (
    alarms,
    apikeys,
    collect,
    dbupgrade,
    doctor,
    executions,
    hints,
    notifications,
    output,
    run,
    services,
    workflows,
)
from st2bridge.cli import stuck as stuckcli
from st2bridge.text import one_line

# As a command killed by SIGPIPE: 128 + 13.
EXIT_BROKEN_PIPE = 141


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
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log at DEBUG on stderr and show tracebacks of errors (also after any command)",
    )
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
    output.add_format_options(svc, ["name", "where", "state", "detail", "id"])
    svc.set_defaults(handler=services.cmd_services)

    dbupgrade.add_parser(commands)
    collect.add_parser(commands)
    apikeys.add_parser(commands)
    notifications.add_parser(commands)
    doctor.add_parser(commands)
    alarms.add_parser(commands)  # rule, event
    return parser


def cmd_track(args, conf):
    """Attach polling again (the prior art's st2-track-result): for an
    execution whose callbacks were lost or that was untracked."""
    with app.build_store(conf, create=False) as store:
        record = control.resolve(store, args.id)
        if st.is_terminal(record["status"]):
            print(_ended(record))
            return errors.EXIT_OK
        store.update_execution(
            record["id"],
            {
                "tracked": True,
                "next_poll_at": schedule.at_once(time.time()),
                # Checked even in callback mode (the safety net's "owner gone").
                "callback_owner": None,
                "poll_failures": 0,
                "not_found_count": 0,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )
    print("execution %s is tracked; a running tracker checks it within one interval" % record["id"])
    return errors.EXIT_OK


def cmd_untrack(args, conf):
    with app.build_store(conf, create=False) as store:
        record = control.resolve(store, args.id)
        if st.is_terminal(record["status"]):
            print(_ended(record))
            return errors.EXIT_OK
        store.update_execution(record["id"], {"tracked": False}, if_active=False)
    print(
        "execution %s is no longer polled (`%s track %s` attaches it again)"
        % (record["id"], hints.prog(args), record["id"])
    )
    return errors.EXIT_OK


def _ended(record):
    """track and untrack agree: a finished execution is never polled."""
    return "execution %s has ended (%s): no tracker polls it; nothing to do" % (
        record["id"],
        record["status"],
    )


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
    parser = build_parser()
    output.add_debug_everywhere(parser)
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        if getattr(args, "loads_config", False):  # doctor reports a bad config itself
            return args.handler(args, oslo_args(args))
        conf = config.load(oslo_args(args), require_file=True)
        if debug:
            conf.set_override("log_level", "DEBUG")
        app.setup_logging(conf, quiet=True, component=app.logs.command_component(args.command))
        code = args.handler(args, conf)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `st2bridge execution list | head`: the reader has what it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except errors.BridgeError as exc:
        if debug:
            traceback.print_exc()
        print("st2bridge: error: %s" % hints.repeat_config(one_line(exc), args), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("st2bridge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
