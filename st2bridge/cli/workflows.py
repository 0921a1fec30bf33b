"""`st2bridge workflow register|list`: definitions in the engine, no execution.

`register` creates or updates workflow files and workbooks in a namespace
(e.g. sub-workflows kept in files of their own, before the workflow that
calls them is run); `list` shows what the engine holds, which is what
`st2bridge run --name` can start.
"""

from st2bridge import app, errors, workflow
from st2bridge.cli import output
from st2bridge.registration import Registrar

LIST_COLUMNS = ["name", "namespace", "input", "updated"]


def add_parser(commands):
    wf = commands.add_parser("workflow", help="register and list workflow definitions")
    sub = wf.add_subparsers(dest="workflow_command", metavar="COMMAND", required=True)

    register = sub.add_parser(
        "register", help="create or update workflow files and workbooks in the engine"
    )
    register.add_argument("files", nargs="+", metavar="FILE.yaml")
    register.add_argument(
        "--namespace", metavar="NS", help="Mistral namespace (default: [engine] namespace)"
    )
    register.add_argument("--json", action="store_true")
    register.set_defaults(handler=cmd_register)

    ls = sub.add_parser("list", help="the workflows the engine holds")
    ls.add_argument("--namespace", metavar="NS", help="only this namespace (default: all)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)


def cmd_register(args, conf):
    namespace = conf.engine.namespace if args.namespace is None else args.namespace
    files = [workflow.load(path) for path in args.files]  # every file checked first
    rows = []
    with app.build_engine(conf) as engine:
        registrar = Registrar(engine)
        for wf_file in files:
            outcome = registrar.register(wf_file, namespace)
            rows.append(
                {
                    "file": wf_file.path,
                    "workbook": wf_file.workbook,
                    "workflows": wf_file.engine_names(),
                    "namespace": namespace,
                    "outcome": outcome,
                }
            )
    if args.json:
        print(output.dumps(rows))
        return errors.EXIT_OK
    for row in rows:
        what = (
            "workbook %s (workflows %s)" % (row["workbook"], ", ".join(row["workflows"]))
            if row["workbook"]
            else "workflow%s %s"
            % ("s" if len(row["workflows"]) > 1 else "", ", ".join(row["workflows"]))
        )
        print(
            "%s: %s %s%s"
            % (
                row["file"],
                what,
                row["outcome"],
                " in namespace %s" % namespace if namespace else "",
            )
        )
    return errors.EXIT_OK


def cmd_list(args, conf):
    with app.build_engine(conf) as engine:
        found = list(
            engine.list_workflows(
                namespace=args.namespace or None,
                fields=["name", "namespace", "input", "created_at", "updated_at"],
            )
        )
    rows = sorted(
        (
            {
                "name": w.get("name"),
                "namespace": w.get("namespace") or "",
                "input": w.get("input") or "",
                "created_at": w.get("created_at"),
                "updated_at": w.get("updated_at") or w.get("created_at"),
            }
            for w in found
            if args.namespace is None or (w.get("namespace") or "") == args.namespace
        ),
        key=lambda r: (r["namespace"], r["name"] or ""),
    )
    if args.json:
        print(output.dumps(rows))
    elif not rows:
        print("no workflows")
    else:
        print(
            output.table(
                [
                    dict(r, namespace=r["namespace"] or "(default)", updated=r["updated_at"])
                    for r in rows
                ],
                LIST_COLUMNS,
            )
        )
    return errors.EXIT_OK
