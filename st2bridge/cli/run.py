"""`st2bridge run`: start a workflow (a file, a workbook, or one the engine
holds) and, with --wait, follow it to its end.

stdout gets the execution id as soon as the record exists (or, with --json,
the record at the end); notes and warnings go to stderr. Once the engine has
accepted the execution the command never reports a failure to start it: a
store that fails afterwards is a warning (a tracker brings the record up to
date), since a caller told to try again would run the workflow twice.
"""

import json
import sys

import yaml

from st2bridge import app, errors, redact, workflow
from st2bridge import status as st
from st2bridge.cli import executions, hints, output
from st2bridge.runner import StartRequest
from st2bridge.text import one_line


def add_parser(commands):
    run = commands.add_parser(
        "run", help="run a workflow file, a workbook or a workflow the engine holds"
    )
    run.add_argument("file", metavar="FILE.yaml", nargs="?", help="a workflow file or workbook")
    run.add_argument(
        "--name",
        metavar="WORKFLOW",
        help="run a workflow the engine holds (WORKBOOK.WORKFLOW for a workbook's) instead "
        "of a file",
    )
    run.add_argument(
        "--workflow",
        metavar="NAME",
        help="which workflow of the file to run (default: the only one; in a workbook, main)",
    )
    run.add_argument(
        "--namespace",
        metavar="NS",
        help="Mistral namespace to register and run in (default: [engine] namespace)",
    )
    run.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input value (JSON, or a plain string); may be repeated",
    )
    run.add_argument(
        "--input-file", metavar="F", help="input values: a JSON object or a YAML mapping"
    )
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a value for the workflow's env() (JSON, or a plain string); may be repeated",
    )
    run.add_argument("--env-file", metavar="F", help="env() values: a JSON object or YAML mapping")
    run.add_argument(
        "--env-name", metavar="NAME", help="run with an environment stored in the engine"
    )
    run.add_argument("--task", metavar="NAME", help="the target task of a reverse workflow")
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="end it with status timeout after this long (see --on-timeout)",
    )
    run.add_argument(
        "--on-timeout",
        choices=["cancel", "leave"],
        default="cancel",
        help="what a timeout does to the engine execution: cancel it (default) or leave it running",
    )
    run.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="a second run with the same key returns the first execution instead of "
        "starting another",
    )
    run.add_argument("--wait", action="store_true", help="follow it to the end")
    run.add_argument("--json", action="store_true", help="print the record as JSON")
    run.set_defaults(handler=cmd_run)


def read_mapping_file(path, what):
    """A JSON object or YAML mapping from a file (JSON is YAML too)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise errors.InputError("cannot read %s file %s: %s" % (what, path, exc.strerror)) from None
    except UnicodeDecodeError:
        raise errors.InputError("%s file %s is not UTF-8 text" % (what, path)) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark else ""
        problem = getattr(exc, "problem", None) or one_line(exc, first_line=True)
        raise errors.InputError(
            "%s file %s is not valid JSON or YAML%s: %s" % (what, path, where, problem)
        ) from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise errors.InputError(
            "%s file %s must hold a JSON object or YAML mapping of names to values" % (what, path)
        )
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise errors.InputError("%s file %s: names must be strings (got %r)" % (what, path, bad[0]))
    return values


def parse_pairs(pairs, what, values=None):
    """KEY=VALUE arguments; a value is JSON when it parses as JSON."""
    values = dict(values or {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise errors.InputError("%s %r is not KEY=VALUE" % (what, pair))
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw  # a plain string needs no JSON quotes
    return values


def parse_inputs(pairs, input_file):
    values = read_mapping_file(input_file, "input") if input_file else {}
    return parse_pairs(pairs, "input", values)


def request_from(args):
    """The StartRequest of the command line; InputError for a wrong combination."""
    if bool(args.file) == bool(args.name):
        raise errors.InputError(
            "give a workflow file or --name WORKFLOW (a workflow the engine holds), not %s"
            % ("both" if args.file else "neither")
        )
    if args.idempotency_key is not None and not args.idempotency_key.strip():
        raise errors.InputError("--idempotency-key must not be empty")
    if args.name and args.workflow:
        raise errors.InputError(
            "--workflow picks a workflow of a file; with --name give WORKBOOK.WORKFLOW"
        )
    env = read_mapping_file(args.env_file, "env") if args.env_file else {}
    env = parse_pairs(args.env, "env", env)
    request = StartRequest(
        input=parse_inputs(args.input, args.input_file),
        env=env or None,
        env_name=args.env_name,
        namespace=args.namespace,
        task=args.task,
        timeout=args.timeout,
        on_timeout=args.on_timeout,
        idempotency_key=args.idempotency_key,
    )
    if args.name:
        request.workflow = args.name
    else:
        wf_file = workflow.load(args.file)  # the file's mistakes first, before the engine's
        request.definition, request.source = wf_file.text, args.file
        request.workflow = args.workflow
    return request


def cmd_run(args, conf):
    request = request_from(args)

    def recorded(record):
        if args.json or args.wait:
            print("execution %s recorded; submitting it" % record["id"], file=sys.stderr)
        else:
            print(record["id"], flush=True)

    with app.build_store(conf) as store:
        engine = app.build_engine(conf, interactive=True)
        runner = app.build_runner(conf, engine, store)
        result = runner.start_request(request, on_recorded=recorded)
        record = result.record
        if result.reused:
            print(
                "st2bridge: note: idempotency key %r: execution %s was started before (%s); "
                "nothing new was started" % (args.idempotency_key, record["id"], record["status"]),
                file=sys.stderr,
            )
        for warning in result.warnings:
            print("st2bridge: warning: %s" % warning, file=sys.stderr)
        if not args.wait:
            if args.json:
                print(output.dumps(output.execution_view(record)))
            elif result.reused:
                print(record["id"])
            return errors.EXIT_OK
        print("execution %s started; waiting for it to end" % record["id"], file=sys.stderr)
        warnings = []
        record = runner.wait(
            record["id"],
            on_progress=lambda r: print("  " + output.progress_line(r), file=sys.stderr),
            warnings=warnings,
        )
        for warning in warnings:
            print("st2bridge: warning: %s" % warning, file=sys.stderr)
        show_end(args, engine, record)
        return errors.EXIT_OK if record["status"] == st.SUCCEEDED else errors.EXIT_FAILED


def show_end(args, engine, record):
    """As `execution get` shows it: for a failure, the engine's error tree and
    the command that re-runs each failed task."""
    tree = executions.error_tree(engine, record) if record["status"] == st.FAILED else None
    if args.json:
        print(output.dumps(dict(output.execution_view(record), error_tree=tree)))
    else:
        print(executions.get_text(redact.mask_record(record), tree, hints.prog(args)))
