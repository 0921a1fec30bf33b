"""Reading Mistral's engine tests for the corpus: the workflow and workbook
texts each test creates (inline YAML, module constants, `%`-formatted ones)
and how it starts them, found in the Python source by walking its syntax
tree. No Mistral code is imported or run.

Used by tests/support/corpus_extract.py; see docs/corpus.md.
"""

import ast
import textwrap
from dataclasses import dataclass, field


class Unknown(Exception):
    """An expression this reader cannot evaluate statically."""


@dataclass
class Created:
    kind: str  # "workflows" | "workbook" | "actions"
    text: str
    label: str  # the Python name it came from, or "" for an inline literal
    namespace: str = ""


@dataclass
class Start:
    name: str
    wf_input: dict = field(default_factory=dict)
    env: dict | None = None
    task_name: str | None = None
    namespace: str = ""
    unsupported: list = field(default_factory=list)  # params the bridge cannot pass
    unit_test_expects: str = ""  # what the unit test awaited first after the start


@dataclass
class FoundCase:
    module: str
    test: str
    created: list  # [Created], setUp's first
    start: Start
    problems: list  # why it cannot be taken as it is


def dedent_definition(text):
    """The YAML text without the Python indentation (a first line of `---`
    right after the quotes has none)."""
    lines = text.split("\n")
    if lines and lines[0].strip() in ("", "---") and not lines[0].startswith(" "):
        head, rest = lines[0].strip(), textwrap.dedent("\n".join(lines[1:]))
        text = (head + "\n" + rest) if head else rest
    else:
        text = textwrap.dedent(text)
    return text.strip("\n") + "\n"


class _Evaluator:
    """Static values of the simple expressions tests build texts and inputs with."""

    def __init__(self, *scopes):
        self.scopes = scopes

    def lookup(self, name):
        for scope in self.scopes:
            if name in scope:
                return scope[name]
        raise Unknown(name)

    def value(self, node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.value(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise Unknown("**")
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.value(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
            left, right = self.value(node.left), self.value(node.right)
            try:
                return left % right if isinstance(node.op, ast.Mod) else left + right
            except (TypeError, ValueError) as exc:
                raise Unknown(str(exc)) from exc
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
        ):
            base = self.value(node.func.value)
            args = [self.value(a) for a in node.args]
            kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg}
            return base.format(*args, **kwargs)
        raise Unknown(ast.dump(node)[:60])


def _constants(body, into, evaluator):
    for stmt in body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                try:
                    into[target.id] = evaluator.value(stmt.value)
                except Unknown:
                    pass


def _in_order(func):
    return sorted(
        (n for n in ast.walk(func) if hasattr(n, "lineno")), key=lambda n: (n.lineno, n.col_offset)
    )


def _call_name(node):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


CREATE_KINDS = {
    "create_workflows": "workflows",
    "create_workbook_v2": "workbook",
    "create_actions": "actions",
}
AWAITS = {
    "await_workflow_success": "SUCCESS",
    "await_workflow_error": "ERROR",
    "await_workflow_paused": "PAUSED",
    "await_workflow_cancelled": "CANCELLED",
    "await_workflow_running": "RUNNING",
    "await_workflow_state": "?",
}
KNOWN_START_KEYWORDS = {"wf_input", "env", "task_name", "wf_namespace", "description"}


def _created(call, evaluator, problems):
    kind = CREATE_KINDS[_call_name(call)]
    if not call.args:
        problems.append("a %s call without a text" % kind)
        return None
    arg = call.args[0]
    try:
        text = evaluator.value(arg)
    except Unknown:
        problems.append("a %s text built at run time" % kind)
        return None
    if not isinstance(text, str):
        problems.append("a %s text that is not a string" % kind)
        return None
    label = arg.id if isinstance(arg, ast.Name) else ""
    namespace = ""
    for kw in call.keywords:
        if kw.arg == "namespace":
            try:
                namespace = evaluator.value(kw.value)
            except Unknown:
                namespace = "?"
    return Created(kind, dedent_definition(text), label, namespace or "")


def _start(call, evaluator):
    start = Start(name="")
    args = list(call.args)
    try:
        start.name = evaluator.value(args[0]) if args else ""
        if len(args) > 1:
            start.namespace = evaluator.value(args[1])
        for kw in call.keywords:
            if kw.arg == "wf_input":
                start.wf_input = evaluator.value(kw.value) or {}
            elif kw.arg == "env":
                start.env = evaluator.value(kw.value)
            elif kw.arg == "task_name":
                start.task_name = evaluator.value(kw.value)
            elif kw.arg == "wf_namespace":
                start.namespace = evaluator.value(kw.value)
            elif kw.arg != "description":
                start.unsupported.append(kw.arg or "**kwargs")
    except Unknown as exc:
        start.unsupported.append("a start argument computed at run time (%s)" % exc)
    if len(args) > 2:
        start.unsupported.append("positional start arguments")
    return start


def _setup_created(cls, evaluator):
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "setUp":
            problems = []
            found = [
                _created(n, evaluator, problems)
                for n in _in_order(stmt)
                if _call_name(n) in CREATE_KINDS
            ]
            return [c for c in found if c], problems
    return [], []


def find_cases(source, module):
    """Every start_workflow call of every test method, with what the test
    (and its class's setUp) created before it."""
    tree = ast.parse(source)
    module_scope = {}
    _constants(tree.body, module_scope, _Evaluator(module_scope))
    cases = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        class_scope = {}
        _constants(cls.body, class_scope, _Evaluator(class_scope, module_scope))
        setup, setup_problems = _setup_created(cls, _Evaluator(class_scope, module_scope))
        for func in cls.body:
            if not (isinstance(func, ast.FunctionDef) and func.name.startswith("test")):
                continue
            cases += _cases_of(func, module, setup, setup_problems, class_scope, module_scope)
    return cases


def _cases_of(func, module, setup, setup_problems, class_scope, module_scope):
    local = {}
    evaluator = _Evaluator(local, class_scope, module_scope)
    created, problems, cases = list(setup), list(setup_problems), []
    mocked = any(
        isinstance(d, ast.Call) and _call_name(d) in ("object", "patch")
        for d in func.decorator_list
    )
    for node in _in_order(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            if isinstance(node.targets[0], ast.Name):
                try:
                    local[node.targets[0].id] = evaluator.value(node.value)
                except Unknown:
                    local.pop(node.targets[0].id, None)
        name = _call_name(node)
        if name in ("object", "patch") or (name == "MagicMock"):
            mocked = True
        if name in CREATE_KINDS:
            c = _created(node, evaluator, problems)
            if c:
                created.append(c)
        elif name == "start_workflow" and isinstance(node.func.value, ast.Attribute):
            cases.append(
                FoundCase(module, func.name, list(created), _start(node, evaluator), list(problems))
            )
        elif name in AWAITS and cases and not cases[-1].start.unit_test_expects:
            expects = AWAITS[name]
            if expects == "?" and len(node.args) > 1:
                arg = node.args[1]
                expects = arg.attr if isinstance(arg, ast.Attribute) else "?"
            cases[-1].start.unit_test_expects = expects
    if mocked:
        for case in cases:
            case.problems.append("mocked")
    return cases
