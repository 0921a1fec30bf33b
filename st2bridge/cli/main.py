"""`st2bridge`: the command line. Thin: parse, build, run, exit with a code.

Every failure the user can cause or fix ends as one line on stderr and a named
exit code (st2bridge.errors); tracebacks are for bugs only.
"""

import argparse
import json
import os
import sys
import time

from st2bridge import __version__, app, config, errors, schedule, workflow
from st2bridge import status as st
from st2bridge.cli import collect, dbupgrade, executions, output, services


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

    run = commands.add_parser("run", help="run a workflow file on the engine")
    run.add_argument("file", metavar="WORKFLOW.yaml")
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input value (JSON, or a plain string); may be repeated",
    )
    run.add_argument("--input-file", metavar="F.json", help="input values as a JSON object")
    run.add_argument(
        "--workflow", metavar="NAME", help="which workflow to run when the file defines several"
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop tracking with status timeout after this long",
    )
    run.add_argument("--wait", action="store_true", help="follow it to the end")
    run.add_argument("--json", action="store_true", help="print the record as JSON")
    run.set_defaults(handler=cmd_run)

    executions.add_parsers(commands)  # execution list/get/tasks/watch/…, task rerun

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
    return parser


def parse_inputs(pairs, input_file):
    values = {}
    if input_file:
        try:
            with open(input_file, encoding="utf-8") as f:
                values = json.load(f)
        except OSError as exc:
            raise errors.InputError(
                "cannot read input file %s: %s" % (input_file, exc.strerror)
            ) from None
        except ValueError as exc:
            raise errors.InputError(
                "input file %s is not valid JSON: %s" % (input_file, exc)
            ) from None
        if not isinstance(values, dict):
            raise errors.InputError("input file %s must hold a JSON object" % input_file)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise errors.InputError("input %r is not KEY=VALUE" % pair)
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw  # a plain string needs no JSON quotes
    return values


def cmd_run(args, conf):
    wf_file = workflow.load(args.file)
    name = workflow.pick(wf_file, args.workflow)
    inputs = parse_inputs(args.input, args.input_file)
    with app.build_store(conf) as store:
        engine = app.build_engine(conf)
        runner = app.build_runner(conf, engine, store)
        record = runner.start(wf_file, name, inputs, timeout=args.timeout)
        if not args.wait:
            print(output.dumps(output.execution_view(record)) if args.json else record["id"])
            return errors.EXIT_OK
        print("execution %s started; waiting for it to end" % record["id"], file=sys.stderr)
        record = runner.wait(
            record["id"],
            on_progress=lambda r: print("  " + output.progress_line(r), file=sys.stderr),
        )
        print(
            output.dumps(output.execution_view(record))
            if args.json
            else output.execution_text(record)
        )
        return errors.EXIT_OK if record["status"] == st.SUCCEEDED else errors.EXIT_FAILED


def cmd_track(args, conf):
    """Attach polling again (the prior art's st2-track-result): for an
    execution whose callbacks were lost or that was untracked."""
    with app.build_store(conf) as store:
        record = store.get_execution(args.id)
        if not store.update_execution(
            args.id,
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
        "execution %s is no longer polled (`st2bridge track %s` attaches it again)"
        % (args.id, args.id)
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
        conf = config.load(oslo_args(args))
        app.setup_logging(conf, quiet=True, component=app.logs.command_component(args.command))
        return args.handler(args, conf)
    except errors.BridgeError as exc:
        print("st2bridge: error: %s" % _one_line(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("st2bridge: interrupted", file=sys.stderr)
        return 130


def _one_line(exc):
    return " ".join(str(exc).split()) or exc.__class__.__name__


if __name__ == "__main__":
    sys.exit(main())
